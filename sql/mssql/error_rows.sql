-- The rows of bitrix_import_lead_error for `b24sync errors list` and `errors retry`, oldest
-- first (by Id, as the embedded database lists them). Id is read as bigint so the loader's
-- 64-bit row_id reads it whatever integer type a hand-made table gave it.
SELECT CAST(Id AS bigint) AS Id, sql_ID, sql_error, sql_date_error
FROM dbo.bitrix_import_lead_error
ORDER BY Id;

-- `b24sync doctor`: the Oktell tables' columns as the server describes them, to compare with
-- the contract (docs/oktell-schema.md). INFORMATION_SCHEMA, not sys.columns: it keeps
-- the names' case on every engine the notes cover. ntext reports a length of 1073741823.
SELECT c.TABLE_NAME AS table_name,
       c.COLUMN_NAME AS column_name,
       c.DATA_TYPE AS data_type,
       c.CHARACTER_MAXIMUM_LENGTH AS max_length,
       c.IS_NULLABLE AS is_nullable
FROM INFORMATION_SCHEMA.COLUMNS AS c
WHERE c.TABLE_SCHEMA = N'dbo'
  AND c.TABLE_NAME IN (N'bitrix_oauth', N'bitrix_leads', N'bitrix_lead_contacts', N'bitrix_lead_solution',
                       N'bitrix_import_lead_error', N'bitrix_lead_runtime')
ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION;

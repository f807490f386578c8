-- `b24sync errors clear --before`: delete the error rows dated before @P1 (a typed datetime2
-- parameter; the datetime column converts to it exactly, so no string dates are parsed in
-- SQL). Rows without a date are kept, as in the embedded database (NULL < @P1 is not true).
-- The count is selected rather than read from the server's row counts, which would also
-- include rows changed by any trigger a DBA put on the table.
SET NOCOUNT ON;
DELETE FROM dbo.bitrix_import_lead_error WHERE sql_date_error < @P1;
SELECT @@ROWCOUNT AS errors_deleted;

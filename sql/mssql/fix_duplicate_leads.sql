-- Remove duplicate bitrix_leads rows (same sql_ID) left by the original row-by-row scripts,
-- keeping the row with the highest Id of each sql_ID (the one written last). Run it once, by
-- hand, when `b24sync init-db` reports duplicates, then run init-db again:
--     sqlcmd -S tcp:HOST,1433 -d oktell -U LOGIN -P PASSWORD -C -b -i sql/mssql/fix_duplicate_leads.sql
-- Everything happens in one transaction: it removes all duplicates or nothing. Contacts and
-- solutions refer to leads by sql_ID, not by Id, so they are unaffected; the next sync
-- rewrites every lead's data anyway.
SET NOCOUNT ON;
SET XACT_ABORT ON;
BEGIN TRANSACTION;
DELETE l
FROM dbo.bitrix_leads AS l
WHERE EXISTS (
    SELECT 1 FROM dbo.bitrix_leads AS k WITH (UPDLOCK, SERIALIZABLE)
    WHERE k.sql_ID = l.sql_ID AND k.Id > l.Id
);
SELECT @@ROWCOUNT AS duplicate_rows_removed;
COMMIT TRANSACTION;

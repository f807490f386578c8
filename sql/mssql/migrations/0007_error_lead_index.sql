-- Migration 7: find a lead's rows in bitrix_import_lead_error without scanning the table.
-- Every batch looks up the error rows of its leads (upsert_batch.sql, delete_leads.sql);
-- without an index each of those statements reads the whole table, so loads slowed down as
-- it grew. The statements compare sql_ID with `=` (then exactly, as bytes), so they seek.
--
-- The key is sql_ID itself, nvarchar(2000). SQL Server caps a nonclustered index key at
-- 1,700 bytes (850 characters): it creates this index with a warning and would refuse a
-- later INSERT or UPDATE whose sql_ID is longer. Why that is the safe choice here:
-- - the alternatives change the contract table (a persisted computed column such as
--   LEFT(sql_ID, 20) adds a column to bitrix_import_lead_error, which Oktell's scenarios and
--   people read; docs/oktell-schema.md allows adding indexes, not columns) or put a burden on
--   every writer (an indexed view requires particular SET options from every session that
--   writes the table, Oktell's included);
-- - b24sync stores at most 800 characters of a lead ID in sql_ID (src/load/mssql/stage.rs;
--   a real ID is a number of a few digits, longer text only comes from a malformed answer,
--   whose full text stays in sql_full_lead_info), so its own writes never hit the limit;
-- - a database that already holds a longer sql_ID makes this CREATE INDEX fail: init-db
--   stops with the server's message, nothing is changed (the migration is one transaction),
--   and the DBA shortens or removes those rows (they are review notes, not lead data):
--       SELECT Id, LEN(sql_ID) FROM dbo.bitrix_import_lead_error WHERE LEN(sql_ID) > 800;
--   then runs `b24sync init-db` again.
IF NOT EXISTS (SELECT 1 FROM dbo.b24sync_migrations WHERE version = 7)
BEGIN
    CREATE INDEX IX_bitrix_import_lead_error_sql_ID
        ON dbo.bitrix_import_lead_error (sql_ID);
    INSERT INTO dbo.b24sync_migrations (version, name, checksum, applied_at)
    VALUES (7, N'error_lead_index', N'manual', SYSUTCDATETIME());
END;

-- Migration 4: one row per Bitrix24 lead. The loader upserts by sql_ID, so it relies on this.
--
-- Databases filled by the original row-by-row scripts can hold duplicate sql_ID rows;
-- creating the index then fails with error 1505. `b24sync init-db` checks for duplicates
-- first (sql/mssql/check_duplicate_leads.sql) and, when it finds some, stops with their
-- count, examples and the fix: run sql/mssql/fix_duplicate_leads.sql (keeps the highest Id
-- of each sql_ID), then init-db again.
-- `CREATE UNIQUE INDEX` (nonclustered is the default) rather than `UNIQUE NONCLUSTERED`:
-- the same index, in the form the parse tests' T-SQL parser accepts.
IF NOT EXISTS (SELECT 1 FROM dbo.b24sync_migrations WHERE version = 4)
BEGIN
    CREATE UNIQUE INDEX UX_bitrix_leads_sql_ID
        ON dbo.bitrix_leads (sql_ID);
    INSERT INTO dbo.b24sync_migrations (version, name, checksum, applied_at)
    VALUES (4, N'leads_unique_sql_id', N'manual', SYSUTCDATETIME());
END;

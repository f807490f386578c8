-- Migration 2: find a lead's contact values without scanning bitrix_lead_contacts.
--
-- The issue asks for an index on (sql_LEAD_ID, sql_CONTACT_ID). sql_CONTACT_ID is
-- nvarchar(2000), up to 4,000 bytes, and SQL Server caps a nonclustered index key at 1,700
-- bytes: it would create such an index with only a warning, and then reject every later
-- INSERT/UPDATE whose key is longer than that — a contract-legal row failing because of an
-- index we added. So the key is sql_LEAD_ID alone and sql_CONTACT_ID is an INCLUDEd column:
-- a lead has a handful of values, the seek on sql_LEAD_ID lands on them, and the
-- sql_CONTACT_ID filter is answered from the index leaf without touching the table.
IF NOT EXISTS (SELECT 1 FROM dbo.b24sync_migrations WHERE version = 2)
BEGIN
    CREATE INDEX IX_bitrix_lead_contacts_lead
        ON dbo.bitrix_lead_contacts (sql_LEAD_ID)
        INCLUDE (sql_CONTACT_ID);
    INSERT INTO dbo.b24sync_migrations (version, name, checksum, applied_at)
    VALUES (2, N'contacts_lead_index', N'manual', SYSUTCDATETIME());
END;

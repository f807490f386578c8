-- Migration 3: find a lead's solution row without scanning bitrix_lead_solution.
IF NOT EXISTS (SELECT 1 FROM dbo.b24sync_migrations WHERE version = 3)
BEGIN
    CREATE INDEX IX_bitrix_lead_solution_lead
        ON dbo.bitrix_lead_solution (sql_LEAD_ID);
    INSERT INTO dbo.b24sync_migrations (version, name, checksum, applied_at)
    VALUES (3, N'solution_lead_index', N'manual', SYSUTCDATETIME());
END;

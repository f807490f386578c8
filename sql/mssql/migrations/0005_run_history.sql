-- Migration 5: the run history, one row per b24sync run (the project's own table, not part
-- of the Oktell contract). A run writes its row when it starts (status 'running') and
-- completes it when it ends, so a run that died shows as unfinished: finished_at NULL and
-- still 'running'. Plain types and clear names, for a DBA reading it in SSMS:
--     SELECT TOP (20) * FROM dbo.b24sync_runs ORDER BY Id DESC;
-- Times are the b24sync machine's local time, like the Oktell tables' datetime columns.
-- Self-guarding and self-recording, so a DBA may run it by hand (see 0001_state_table.sql).
IF NOT EXISTS (SELECT 1 FROM dbo.b24sync_migrations WHERE version = 5)
BEGIN
    IF OBJECT_ID(N'dbo.b24sync_runs', N'U') IS NULL
    BEGIN
        CREATE TABLE dbo.b24sync_runs (
            Id int IDENTITY(1,1) NOT NULL,
            started_at datetime2(0) NOT NULL,
            finished_at datetime2(0) NULL,
            mode nvarchar(40) NOT NULL,
            status nvarchar(20) NOT NULL,
            leads_read bigint NULL,
            leads_upserted bigint NULL,
            leads_deleted bigint NULL,
            contact_values bigint NULL,
            error_rows bigint NULL,
            requests bigint NULL,
            server_seconds float NULL,
            seconds float NULL,
            exit_code int NULL,
            message nvarchar(2000) NULL,
            CONSTRAINT PK_b24sync_runs PRIMARY KEY CLUSTERED (Id)
        );
    END;
    INSERT INTO dbo.b24sync_migrations (version, name, checksum, applied_at)
    VALUES (5, N'run_history', N'manual', SYSUTCDATETIME());
END;

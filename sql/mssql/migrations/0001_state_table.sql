-- Migration 1: the project's own key/value state (run watermark, OAuth token store, ...).
-- Self-guarding and self-recording, so a DBA may run it by hand with sqlcmd; `b24sync
-- init-db` then finds version 1 recorded and skips it. The checksum N'manual' is replaced by
-- the file's checksum when b24sync applies it.
IF NOT EXISTS (SELECT 1 FROM dbo.b24sync_migrations WHERE version = 1)
BEGIN
    IF OBJECT_ID(N'dbo.b24sync_state', N'U') IS NULL
    BEGIN
        CREATE TABLE dbo.b24sync_state (
            name nvarchar(200) NOT NULL,
            value nvarchar(max) NULL,
            updated_at datetime2(0) NOT NULL,
            CONSTRAINT PK_b24sync_state PRIMARY KEY CLUSTERED (name)
        );
    END;
    INSERT INTO dbo.b24sync_migrations (version, name, checksum, applied_at)
    VALUES (1, N'state_table', N'manual', SYSUTCDATETIME());
END;

-- Migration 2: the run history, one row per b24sync run (b24sync's own table, not part of
-- the Oktell contract). A run writes its row when it starts (status 'running') and completes
-- it when it ends, so a run that died shows as unfinished: finished_at NULL, still 'running'.
-- Plain types and the same column names as on SQL Server, so the same queries work on both.
-- Datetime columns hold local text 'YYYY-MM-DD HH:MM:SS', like the contract tables.
CREATE TABLE IF NOT EXISTS b24sync_runs (
    Id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at DATETIME NOT NULL,
    finished_at DATETIME NULL,
    mode NVARCHAR(40) NOT NULL,
    status NVARCHAR(20) NOT NULL,
    leads_read BIGINT NULL,
    leads_upserted BIGINT NULL,
    leads_deleted BIGINT NULL,
    contact_values BIGINT NULL,
    error_rows BIGINT NULL,
    requests BIGINT NULL,
    server_seconds FLOAT NULL,
    seconds FLOAT NULL,
    exit_code INTEGER NULL,
    message NVARCHAR(2000) NULL
);

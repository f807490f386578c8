-- Migration 11: the durable event queue of `b24sync serve` (the project's own table, not part
-- of the Oktell contract). One row per (entity type, entity ID) waiting to be read again from
-- Bitrix24: a flood of events for the same ID coalesces into one row (revision counts them;
-- the worker removes a row only at the revision it read). Times are UTC milliseconds since
-- 1970. Clustered on the key: events upsert by it, the worker reads one entity type at a time.
-- Self-guarding and self-recording, so a DBA may run it by hand (see 0001_state_table.sql).
IF NOT EXISTS (SELECT 1 FROM dbo.b24sync_migrations WHERE version = 11)
BEGIN
    IF OBJECT_ID(N'dbo.b24sync_event_queue', N'U') IS NULL
    BEGIN
        CREATE TABLE dbo.b24sync_event_queue (
            entity_type varchar(20) NOT NULL,
            entity_id bigint NOT NULL,
            event_action varchar(10) NOT NULL,
            first_queued_ms bigint NOT NULL,
            last_queued_ms bigint NOT NULL,
            revision bigint NOT NULL,
            attempts int NOT NULL,
            last_error nvarchar(2000) NULL,
            CONSTRAINT PK_b24sync_event_queue PRIMARY KEY CLUSTERED (entity_type, entity_id)
        );
    END;
    INSERT INTO dbo.b24sync_migrations (version, name, checksum, applied_at)
    VALUES (11, N'event_queue', N'manual', SYSUTCDATETIME());
END;

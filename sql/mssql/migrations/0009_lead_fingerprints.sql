-- Migration 9: the leads' content fingerprints (the project's own table, not part of the
-- Oktell contract; src/prepare/fingerprint.rs). One row per lead written without problems: a
-- 64-bit hash of the rows b24sync wrote for it (bitrix_leads, its contact values, its
-- normalised phones, its solution), written in the same transaction as those rows
-- (fingerprints_sync.sql inside the batch's transaction). A full sync reads the table once
-- and skips the leads whose fingerprint did not change, so a portal where nothing changed
-- costs the Oktell tables nothing; `b24sync sync --full --verify` ignores it and compares
-- every lead (after a manual edit or a restore of the Oktell tables).
-- Clustered on lead_id: the sync reads it whole, the batches seek it by lead.
-- Self-guarding and self-recording, so a DBA may run it by hand (see 0001_state_table.sql).
IF NOT EXISTS (SELECT 1 FROM dbo.b24sync_migrations WHERE version = 9)
BEGIN
    IF OBJECT_ID(N'dbo.b24sync_lead_fingerprints', N'U') IS NULL
    BEGIN
        CREATE TABLE dbo.b24sync_lead_fingerprints (
            lead_id int NOT NULL,
            fingerprint bigint NOT NULL,
            CONSTRAINT PK_b24sync_lead_fingerprints PRIMARY KEY CLUSTERED (lead_id)
        );
    END;
    INSERT INTO dbo.b24sync_migrations (version, name, checksum, applied_at)
    VALUES (9, N'lead_fingerprints', N'manual', SYSUTCDATETIME());
END;

-- Set one value of the project's key/value state: @P1 name, @P2 value; updated_at is UTC
-- (as in the embedded database). Written as UPDATE, then INSERT ... WHERE NOT EXISTS, in one
-- transaction, not MERGE (see upsert_batch.sql for why). UPDLOCK, SERIALIZABLE holds the key
-- range from the UPDATE's look-up to the INSERT's check, so two writers of a new name cannot
-- both insert it (the second waits, then finds the row and inserts nothing).
SET NOCOUNT ON;
SET XACT_ABORT ON;
BEGIN TRANSACTION;
UPDATE dbo.b24sync_state WITH (UPDLOCK, SERIALIZABLE)
SET value = @P2, updated_at = SYSUTCDATETIME()
WHERE name = @P1;
INSERT INTO dbo.b24sync_state (name, value, updated_at)
SELECT @P1, @P2, SYSUTCDATETIME()
WHERE NOT EXISTS (
    SELECT 1 FROM dbo.b24sync_state WITH (UPDLOCK, SERIALIZABLE) WHERE name = @P1
);
COMMIT TRANSACTION;

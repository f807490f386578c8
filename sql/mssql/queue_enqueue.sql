-- One event into dbo.b24sync_event_queue, inside the transaction the sink opened for all the
-- events of one call (@P1 entity type, @P2 ID, @P3 action, @P4 now in UTC ms): the waiting
-- row of the same entity coalesced (the latest action wins, the first time stays, the
-- revision moves), else a new row. UPDATE, then INSERT ... WHERE NOT EXISTS under UPDLOCK,
-- SERIALIZABLE, not MERGE (see state_write.sql): two handlers queueing the same new ID
-- cannot both insert it. No run-lock check: events are queued while a sync runs.
SET NOCOUNT ON;
-- The entity type as the column's varchar, so the key is sought, not converted.
DECLARE @entity varchar(20) = @P1;
DECLARE @action varchar(10) = @P3;
UPDATE dbo.b24sync_event_queue WITH (UPDLOCK, SERIALIZABLE)
SET event_action = @action, last_queued_ms = @P4, revision = revision + 1
WHERE entity_type = @entity AND entity_id = @P2;
INSERT INTO dbo.b24sync_event_queue (entity_type, entity_id, event_action, first_queued_ms, last_queued_ms, revision, attempts, last_error)
SELECT @entity, @P2, @action, @P4, @P4, 1, 0, NULL
WHERE NOT EXISTS (
    SELECT 1 FROM dbo.b24sync_event_queue WITH (UPDLOCK, SERIALIZABLE)
    WHERE entity_type = @entity AND entity_id = @P2
);

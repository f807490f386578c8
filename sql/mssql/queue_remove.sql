-- A processed row (@P1 entity type, @P2 ID), only at the revision the worker read (@P3): an
-- event that arrived meanwhile keeps it queued. Sent inside the sink's transaction.
SET NOCOUNT ON;
DELETE FROM dbo.b24sync_event_queue
WHERE entity_type = @P1 AND entity_id = @P2 AND revision = @P3;

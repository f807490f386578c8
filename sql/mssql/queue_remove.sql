-- A processed row (@P1 entity type, @P2 ID), only at the revision the worker read (@P3): an
-- event that arrived meanwhile keeps it queued. Sent inside the sink's transaction.
SET NOCOUNT ON;
-- The entity type as the column's varchar, so the key is sought, not converted.
DECLARE @entity varchar(20) = @P1;
DELETE FROM dbo.b24sync_event_queue
WHERE entity_type = @entity AND entity_id = @P2 AND revision = @P3;

-- The oldest waiting rows of one entity type (@P1), at most @P2, fewest attempts first.
-- The entity type as the column's varchar, so the key is sought, not converted.
DECLARE @entity varchar(20) = @P1;
SELECT TOP (@P2) entity_id, event_action, first_queued_ms, last_queued_ms, revision, attempts, last_error
FROM dbo.b24sync_event_queue
WHERE entity_type = @entity
ORDER BY attempts, first_queued_ms, entity_id;

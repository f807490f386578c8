-- A row whose processing failed (@P1 entity type, @P2 ID): one attempt more and why (@P3).
-- Sent inside the sink's transaction.
SET NOCOUNT ON;
-- The entity type as the column's varchar, so the key is sought, not converted.
DECLARE @entity varchar(20) = @P1;
UPDATE dbo.b24sync_event_queue
SET attempts = attempts + 1, last_error = @P3
WHERE entity_type = @entity AND entity_id = @P2;

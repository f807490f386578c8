-- The oldest waiting rows of one entity type (?1), at most ?2, fewest attempts first.
SELECT entity_id, event_action, first_queued_ms, last_queued_ms, revision, attempts, last_error
FROM b24sync_event_queue
WHERE entity_type = ?1
ORDER BY attempts, first_queued_ms, entity_id
LIMIT ?2;

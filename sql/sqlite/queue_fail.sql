-- A row whose processing failed (?1 entity type, ?2 ID): one attempt more and why (?3).
UPDATE b24sync_event_queue SET attempts = attempts + 1, last_error = ?3
WHERE entity_type = ?1 AND entity_id = ?2;

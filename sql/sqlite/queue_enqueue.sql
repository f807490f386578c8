-- One event into the queue (?1 entity type, ?2 ID, ?3 event_action, ?4 now in UTC ms): a new row,
-- or the waiting row of the same entity coalesced: the latest event_action wins, the first time
-- stays, the revision moves (so the worker's remove of the older read keeps it).
INSERT INTO b24sync_event_queue (entity_type, entity_id, event_action, first_queued_ms, last_queued_ms, revision, attempts, last_error)
VALUES (?1, ?2, ?3, ?4, ?4, 1, 0, NULL)
ON CONFLICT (entity_type, entity_id) DO UPDATE SET
    event_action = excluded.event_action,
    last_queued_ms = excluded.last_queued_ms,
    revision = b24sync_event_queue.revision + 1;

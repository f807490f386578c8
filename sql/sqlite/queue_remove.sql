-- A processed row (?1 entity type, ?2 ID), only at the revision the worker read (?3): an
-- event that arrived meanwhile keeps it queued.
DELETE FROM b24sync_event_queue WHERE entity_type = ?1 AND entity_id = ?2 AND revision = ?3;

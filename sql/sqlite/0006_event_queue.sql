-- Migration 6: the durable event queue of `b24sync serve` (src/serve/), the project's own
-- table next to the Oktell tables, which stay exactly as they are. One row per (entity type,
-- entity ID) waiting to be read again from Bitrix24: a flood of events for the same ID
-- coalesces into one row (revision counts them; the worker removes a row only at the
-- revision it read). Times are UTC milliseconds since 1970.
CREATE TABLE IF NOT EXISTS b24sync_event_queue (
    entity_type VARCHAR(20) NOT NULL,
    entity_id BIGINT NOT NULL,
    event_action VARCHAR(10) NOT NULL,
    first_queued_ms BIGINT NOT NULL,
    last_queued_ms BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error NVARCHAR(2000),
    PRIMARY KEY (entity_type, entity_id)
);
CREATE INDEX IF NOT EXISTS ix_b24sync_event_queue_first ON b24sync_event_queue (entity_type, first_queued_ms);

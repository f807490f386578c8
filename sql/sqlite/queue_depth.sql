-- How many rows wait, the oldest first-queued time (UTC ms) and the rows that failed at
-- least once.
SELECT COUNT(*), MIN(first_queued_ms), COALESCE(SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END), 0)
FROM b24sync_event_queue;

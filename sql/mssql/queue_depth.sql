-- How many rows wait, the oldest first-queued time (UTC ms) and the rows that failed at
-- least once.
SELECT COUNT_BIG(*) AS queued,
       MIN(first_queued_ms) AS oldest_ms,
       COALESCE(SUM(CASE WHEN attempts > 0 THEN CAST(1 AS bigint) ELSE CAST(0 AS bigint) END), CAST(0 AS bigint)) AS failed
FROM dbo.b24sync_event_queue;

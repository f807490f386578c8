-- The last ?1 runs, newest first (Id follows the start order).
SELECT Id, started_at, finished_at, mode, status, leads_read, leads_upserted, leads_deleted,
       contact_values, error_rows, requests, server_seconds, seconds, exit_code, message
FROM b24sync_runs
ORDER BY Id DESC
LIMIT ?1;

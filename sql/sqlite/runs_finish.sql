-- A run ends: complete its row (?1 Id) with the outcome.
UPDATE b24sync_runs
SET finished_at = ?2,
    status = ?3,
    leads_read = ?4,
    leads_upserted = ?5,
    leads_deleted = ?6,
    contact_values = ?7,
    error_rows = ?8,
    requests = ?9,
    server_seconds = ?10,
    seconds = ?11,
    exit_code = ?12,
    message = ?13
WHERE Id = ?1;

-- Stamp bitrix_lead_runtime's single row (Id = 1, as the original scenarios keep it) with
-- the finish of a run: both stages run in every b24sync run, so both columns get @P1.
-- An UPDATE only, so a sync needs no more than UPDATE on the table: init-db creates the row
-- (runtime_row.sql), and every sync checks it is there before writing anything. Sent inside
-- the run's checked write transaction (lock_guard.sql); 0 rows means someone deleted it.
SET NOCOUNT ON;
UPDATE dbo.bitrix_lead_runtime WITH (UPDLOCK, SERIALIZABLE)
SET lead_get_by_id_dt = @P1, lead_list_dt = @P1
WHERE Id = 1;
SELECT @@ROWCOUNT AS runtime_rows;

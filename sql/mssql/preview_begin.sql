-- Open the transaction a dry-run preview runs in (`sync --dry-run`): the batch is staged and
-- upsert_batch.sql runs inside it exactly as for a real load, so its counts are the real ones;
-- upsert_batch.sql's own BEGIN/COMMIT only nest inside this one, and preview_end.sql undoes
-- it all. (IDENTITY values the rolled-back inserts drew are not given back: SQL Server never
-- reuses them, so later Ids may have gaps, which Oktell does not rely on.)
SET XACT_ABORT ON;
BEGIN TRANSACTION;

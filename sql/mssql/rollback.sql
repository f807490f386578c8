-- Sent after a failed batch: undo whatever is still open on this pooled connection, so it
-- goes back to the pool clean. (XACT_ABORT ON usually rolled back already.)
IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;

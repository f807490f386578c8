-- End a dry-run preview: roll back everything the batch did (see preview_begin.sql).
IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;

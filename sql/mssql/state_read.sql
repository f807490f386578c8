-- One value of the project's key/value state (run watermark, deletion-check schedule);
-- no row means "never set". @P1 is the name.
SELECT value FROM dbo.b24sync_state WHERE name = @P1;

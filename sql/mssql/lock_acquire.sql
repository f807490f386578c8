-- Take the run lock: one b24sync run per database at a time. Session-owned, so it outlives
-- this statement and is held by the sink's dedicated connection until lock_release.sql or
-- until that connection closes (the process ends or dies: SQL Server frees it then).
-- @P1 = how long to wait, in milliseconds. sp_getapplock returns 0 (granted), 1 (granted after
-- waiting), or a negative code (-1 timeout, -2 cancelled, -3 deadlock victim, -999 error).
-- Reading that code needs `EXEC @r = proc`, which the parse tests' parser rejects: this
-- statement is on their allowlist. Once granted, lock_confirm.sql runs on the same session.
DECLARE @r int;
EXEC @r = sp_getapplock @Resource = N'b24sync', @LockMode = N'Exclusive', @LockOwner = N'Session', @LockTimeout = @P1;
SELECT @r AS result;

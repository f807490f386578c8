-- Take an OAuth app's refresh lock: @P1 = N'b24sync:oauth:' + client_id, @P2 = how long to
-- wait, in milliseconds. Session-owned, on a connection the lock guard keeps for its life, so
-- the lock is held from the re-read through the refresh call to the write, and SQL Server
-- frees it if the process dies (its session ends). Returns 0 (granted), 1 (granted after
-- waiting) or a negative code (-1 timeout, -2 cancelled, -3 deadlock victim, -999 error).
-- `EXEC @r = proc` is on the parse tests' allowlist (sqlparser rejects it).
DECLARE @r int;
EXEC @r = sp_getapplock @Resource = @P1, @LockMode = 'Exclusive', @LockOwner = 'Session', @LockTimeout = @P2;
SELECT @r AS result;

-- Sent on the run lock's session right after lock_acquire.sql granted the run lock.
-- @P1 = this run's token, N'b24sync:run:<16 random hex digits>'; @P2 = how long to wait, in ms.
--
-- 1. The token: a second session-owned lock whose name only this run knows. Every write
--    transaction of the run checks that it is still held (lock_guard.sql): the run lock
--    itself cannot be checked from another session (APPLOCK_MODE sees only the caller's own
--    locks, and whoever holds N'b24sync' looks the same), but a lock nobody else ever asks
--    for is held exactly as long as this session lives.
-- 2. The barrier: an exclusive lock on N'b24sync:writes', taken and released at once. Every
--    write transaction holds that resource in Shared mode until it commits, so this waits for
--    the write transactions of a previous holder whose session died while they were in
--    flight: from here on, no transaction of an earlier run can commit (those that start
--    now find their token gone and roll back).
-- Codes are read with APPLOCK_MODE rather than `EXEC @r = ...` (which the parse tests'
-- parser rejects): sp_getapplock with a timeout returns -1 without raising an error.
-- @@SPID is returned so the run can name its lock session in logs (and tests can end it).
SET NOCOUNT ON;
EXEC sp_getapplock @Resource = @P1, @LockMode = N'Exclusive', @LockOwner = N'Session', @LockTimeout = 0;
EXEC sp_getapplock @Resource = N'b24sync:writes', @LockMode = N'Exclusive', @LockOwner = N'Session', @LockTimeout = @P2;
SELECT APPLOCK_MODE(N'public', @P1, N'Session') AS token_mode,
       APPLOCK_MODE(N'public', N'b24sync:writes', N'Session') AS barrier_mode,
       CAST(@@SPID AS int) AS spid;
IF APPLOCK_MODE(N'public', N'b24sync:writes', N'Session') <> N'NoLock'
    EXEC sp_releaseapplock @Resource = N'b24sync:writes', @LockOwner = N'Session';

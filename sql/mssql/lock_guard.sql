-- Sent inside every write transaction of a run that holds the run lock (a batch, a deletion,
-- a state value, the operators, the runtime stamp), before it writes; @P1 = the run's token
-- (see lock_confirm.sql). The caller rolls back unless writes_mode is N'Shared' and
-- token_free is 0.
--
-- Why this is enough, even if the lock session dies between this check and the COMMIT:
-- - token_free = 0 means the run's lock session was alive when this transaction took its
--   Shared lock on N'b24sync:writes' (taken first, below), so no other run held the run lock
--   then;
-- - that Shared lock is transaction-owned: it is held until this transaction commits or
--   rolls back, whatever happens to the lock session meanwhile;
-- - another run that gets the run lock after the session died must first pass the barrier
--   (an Exclusive lock on N'b24sync:writes', lock_confirm.sql), which waits for this
--   transaction to end. So a transaction that passed this check commits before any other
--   run writes, and every later transaction of this run finds its token free and rolls back.
-- The wait (30 s) only matters while another run is passing the barrier; a lock not granted
-- in that time means another run is taking over, and is treated like a lost lock.
SET NOCOUNT ON;
EXEC sp_getapplock @Resource = N'b24sync:writes', @LockMode = N'Shared', @LockOwner = N'Transaction', @LockTimeout = 30000;
SELECT APPLOCK_MODE(N'public', N'b24sync:writes', N'Transaction') AS writes_mode,
       APPLOCK_TEST(N'public', @P1, N'Shared', N'Transaction') AS token_free;

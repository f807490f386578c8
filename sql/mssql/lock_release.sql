-- Release the run lock if this session holds it (releasing a lock not held is an error).
IF APPLOCK_MODE(N'public', N'b24sync', N'Session') <> N'NoLock'
    EXEC sp_releaseapplock @Resource = N'b24sync', @LockOwner = N'Session';

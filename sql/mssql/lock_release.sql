-- Release the run lock and this run's token (@P1) if this session holds them (releasing a
-- lock not held is an error). Closing the session frees both anyway.
IF APPLOCK_MODE(N'public', @P1, N'Session') <> N'NoLock'
    EXEC sp_releaseapplock @Resource = @P1, @LockOwner = N'Session';
IF APPLOCK_MODE(N'public', N'b24sync', N'Session') <> N'NoLock'
    EXEC sp_releaseapplock @Resource = N'b24sync', @LockOwner = N'Session';

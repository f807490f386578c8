-- Release an OAuth app's refresh lock (@P1, as taken) if this session holds it: releasing a
-- lock that is not held is an error.
IF APPLOCK_MODE(N'public', @P1, N'Session') <> N'NoLock'
    EXEC sp_releaseapplock @Resource = @P1, @LockOwner = N'Session';

-- A run starts: @P1 started_at, @P2 mode. The counts stay NULL (unknown) until it finishes.
-- SCOPE_IDENTITY() (not @@IDENTITY): the new row's Id even if a trigger inserts elsewhere.
SET NOCOUNT ON;
INSERT INTO dbo.b24sync_runs (started_at, mode, status) VALUES (@P1, @P2, N'running');
SELECT CAST(SCOPE_IDENTITY() AS bigint) AS Id;

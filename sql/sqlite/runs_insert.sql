-- A run starts: ?1 started_at, ?2 mode. The counts stay NULL (unknown) until it finishes.
INSERT INTO b24sync_runs (started_at, mode, status) VALUES (?1, ?2, 'running');

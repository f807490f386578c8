-- updated_at is UTC.
INSERT INTO b24sync_state (name, value, updated_at)
VALUES (?1, ?2, strftime('%Y-%m-%d %H:%M:%S', 'now'))
ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at;

-- applied_at is UTC.
INSERT INTO b24sync_migrations (version, name, applied_at)
VALUES (?1, ?2, strftime('%Y-%m-%d %H:%M:%S', 'now'));

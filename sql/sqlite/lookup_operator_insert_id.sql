-- An operator known by ID only (no user scope, or not returned by user.get): ?1 user_id.
-- Details stored earlier are kept.
INSERT INTO b24sync_operators (user_id, updated_at)
VALUES (?1, strftime('%Y-%m-%d %H:%M:%S', 'now'))
ON CONFLICT (user_id) DO NOTHING;

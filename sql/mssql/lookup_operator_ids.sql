-- The operators already stored: each sync that changes leads refreshes them all.
SELECT user_id FROM dbo.b24sync_operators ORDER BY user_id;

SELECT user_id FROM b24sync_operators ORDER BY user_id;

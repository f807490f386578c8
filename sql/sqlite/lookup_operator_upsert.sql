-- An operator read from user.get: ?1 user_id, ?2 name, ?3 last_name, ?4 email,
-- ?5 phone_inner, ?6 active (1/0/NULL). Times are UTC. A row whose details did not change
-- keeps its updated_at.
INSERT INTO b24sync_operators (user_id, name, last_name, email, phone_inner, active, details_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, strftime('%Y-%m-%d %H:%M:%S', 'now'), strftime('%Y-%m-%d %H:%M:%S', 'now'))
ON CONFLICT (user_id) DO UPDATE SET
    name = excluded.name,
    last_name = excluded.last_name,
    email = excluded.email,
    phone_inner = excluded.phone_inner,
    active = excluded.active,
    details_at = excluded.details_at,
    updated_at = CASE
        WHEN name IS excluded.name AND last_name IS excluded.last_name AND email IS excluded.email
             AND phone_inner IS excluded.phone_inner AND active IS excluded.active
        THEN updated_at ELSE excluded.updated_at END;

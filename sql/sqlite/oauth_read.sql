-- The application's bitrix_oauth row. The contract table has no unique key on client_id;
-- should an old installation hold several rows for one app, the newest one wins.
SELECT client_id, client_secret, redirect_uri, access_token, refresh_token, expires_in,
       scope, domain, member_id, user_id, dateexec
FROM bitrix_oauth
WHERE client_id = ?1
ORDER BY Id DESC
LIMIT 1;

-- The application's bitrix_oauth row (@P1 client_id). The contract table has no unique key on
-- client_id; should an old installation hold several rows for one app, the newest one wins.
SELECT TOP (1) client_id, client_secret, redirect_uri, access_token, refresh_token, expires_in, scope, domain, member_id, user_id, dateexec FROM dbo.bitrix_oauth WHERE client_id = @P1 ORDER BY Id DESC;

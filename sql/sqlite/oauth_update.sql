-- Updates the application's row in place (every row of that client_id, should there be
-- several). `code` is left as it is: the one-time code is spent and never needed again.
-- ?9 redirect_uri NULL keeps the stored one.
UPDATE bitrix_oauth
SET client_secret = ?2,
    access_token = ?3,
    refresh_token = ?4,
    expires_in = ?5,
    scope = ?6,
    domain = ?7,
    member_id = ?8,
    redirect_uri = COALESCE(?9, redirect_uri),
    user_id = ?10,
    dateexec = ?11
WHERE client_id = ?1;

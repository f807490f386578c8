-- The application's first row.
INSERT INTO bitrix_oauth (client_id, client_secret, access_token, refresh_token, expires_in,
                          scope, domain, member_id, redirect_uri, user_id, dateexec)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11);

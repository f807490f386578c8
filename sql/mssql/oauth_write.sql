-- Store an application's tokens: its bitrix_oauth row, updated in place (every row of that
-- client_id, should there be several) or inserted, and beside it the b24sync_state value
-- `oauth:<client_id>` (what the contract table has no column for), in ONE transaction, so the
-- pair and its expiry are never half written. UPDATE then INSERT, not MERGE (see
-- upsert_batch.sql). `code` is left as it is: the one-time code is spent.
-- @P1 client_id, @P2 client_secret, @P3 access_token, @P4 refresh_token, @P5 expires_in,
-- @P6 scope, @P7 domain, @P8 member_id, @P9 1 = set redirect_uri to @P10 (0 keeps the stored
-- one; no NULL parameter is ever sent), @P11 user_id, @P12 dateexec, @P13 state name,
-- @P14 state value.
SET NOCOUNT ON;
SET XACT_ABORT ON;
BEGIN TRANSACTION;
UPDATE dbo.bitrix_oauth WITH (UPDLOCK, SERIALIZABLE)
SET client_secret = @P2,
    access_token = @P3,
    refresh_token = @P4,
    expires_in = @P5,
    scope = @P6,
    domain = @P7,
    member_id = @P8,
    redirect_uri = CASE WHEN @P9 = 1 THEN @P10 ELSE redirect_uri END,
    user_id = @P11,
    dateexec = @P12
WHERE client_id = @P1;
IF @@ROWCOUNT = 0
BEGIN
    INSERT INTO dbo.bitrix_oauth (client_id, client_secret, access_token, refresh_token, expires_in,
                                  scope, domain, member_id, redirect_uri, user_id, dateexec)
    VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, CASE WHEN @P9 = 1 THEN @P10 END, @P11, @P12);
END;
UPDATE dbo.b24sync_state WITH (UPDLOCK, SERIALIZABLE)
SET value = @P14, updated_at = SYSUTCDATETIME()
WHERE name = @P13;
INSERT INTO dbo.b24sync_state (name, value, updated_at)
SELECT @P13, @P14, SYSUTCDATETIME()
WHERE NOT EXISTS (
    SELECT 1 FROM dbo.b24sync_state WITH (UPDLOCK, SERIALIZABLE) WHERE name = @P13
);
COMMIT TRANSACTION;

-- Upsert #stage_operators into dbo.b24sync_operators in one transaction (UPDATE, then
-- INSERT ... WHERE NOT EXISTS; no MERGE, see upsert_batch.sql). A staged operator with
-- details replaces the stored details (updated_at moves only when they changed); one known
-- by ID only is added when missing and otherwise leaves the stored details alone.
-- Times are UTC, as in the embedded database.
SET NOCOUNT ON;
SET XACT_ABORT ON;
BEGIN TRANSACTION;

UPDATE o SET
        o.name = s.name,
        o.last_name = s.last_name,
        o.email = s.email,
        o.phone_inner = s.phone_inner,
        o.active = CAST(s.active AS bit),
        o.details_at = SYSUTCDATETIME(),
        o.updated_at = CASE
            WHEN EXISTS (SELECT CAST(o.name AS varbinary(max)), CAST(o.last_name AS varbinary(max)), CAST(o.email AS varbinary(max)), CAST(o.phone_inner AS varbinary(max)), CAST(o.active AS int)
                         INTERSECT
                         SELECT CAST(s.name AS varbinary(max)), CAST(s.last_name AS varbinary(max)), CAST(s.email AS varbinary(max)), CAST(s.phone_inner AS varbinary(max)), s.active)
            THEN o.updated_at
            ELSE SYSUTCDATETIME()
        END
FROM dbo.b24sync_operators AS o WITH (UPDLOCK, SERIALIZABLE)
INNER JOIN #stage_operators AS s ON s.user_id = o.user_id
WHERE s.details = 1;

INSERT INTO dbo.b24sync_operators (user_id, name, last_name, email, phone_inner, active, details_at, updated_at)
SELECT s.user_id, s.name, s.last_name, s.email, s.phone_inner, CAST(s.active AS bit),
       CASE WHEN s.details = 1 THEN SYSUTCDATETIME() ELSE NULL END, SYSUTCDATETIME()
FROM #stage_operators AS s
WHERE NOT EXISTS (
    SELECT 1 FROM dbo.b24sync_operators AS o WITH (UPDLOCK, SERIALIZABLE)
    WHERE o.user_id = s.user_id
)
ORDER BY s.user_id;

COMMIT TRANSACTION;

DROP TABLE #stage_operators;

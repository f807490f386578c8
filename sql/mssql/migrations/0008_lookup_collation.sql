-- Migration 8: the caller lookup on engines whose default collation is non-deterministic.
-- Babelfish for PostgreSQL (and any database with such a default) refuses `LIKE` under a
-- non-deterministic (case- or accent-insensitive) collation: "nondeterministic collations
-- are not supported for LIKE". The normalised columns of dbo.b24sync_lead_phones (e164,
-- extension, digits_rev) are declared COLLATE Latin1_General_BIN2 since migration 0006, so
-- they need no change (and none is made: rebuilding them would need ALTER COLUMN, which
-- some of those engines do not support either). What failed were the LIKEs in the two
-- lookup functions on the *parameters* (@tail, @number) and on expressions built from them:
-- those take the database's default collation. This migration re-creates the functions with
-- every comparison on digits in Latin1_General_BIN2, explicitly:
-- - `@tail COLLATE Latin1_General_BIN2 NOT LIKE '%[^0-9]%'`: under BIN2, [0-9] is exactly
--   the ASCII digits (a case-insensitive collation may also match other digit characters);
-- - `p.digits_rev LIKE (...) COLLATE Latin1_General_BIN2` and `p.e164 = @e164 COLLATE ...`:
--   the column's own collation, so the comparisons still seek the indexes of 0006;
-- - the number's clean-up in b24sync_lookup_caller (`+` prefix, digits only) likewise.
-- The functions' results and signatures are unchanged; the view is not touched.
-- Sent by `b24sync init-db` batch by batch (split at GO) in one transaction; a DBA can run it
-- with sqlcmd (each batch re-creates its object; the migration is recorded last).
IF OBJECT_ID(N'dbo.b24sync_lookup_caller', N'IF') IS NOT NULL DROP FUNCTION dbo.b24sync_lookup_caller;
GO
IF OBJECT_ID(N'dbo.b24sync_lookup_caller_keys', N'IF') IS NOT NULL DROP FUNCTION dbo.b24sync_lookup_caller_keys;
GO
-- The leads with a phone matching the keys, with their operators (one row per lead; order
-- them in the calling query: ORDER BY date_modify DESC).
-- @e164: the caller's E.164 number ('+79123456789'), or '' when it is not known; then
-- @tail: the caller's last N digits ('9123456789'), at least 7 digits only, matched against
-- the end of every stored number. Inline, so the optimizer seeks IX_b24sync_lead_phones_e164
-- or IX_b24sync_lead_phones_digits_rev (only the branch the keys select runs) and then the
-- unique index on bitrix_leads.sql_ID.
CREATE FUNCTION dbo.b24sync_lookup_caller_keys (@e164 varchar(16), @tail varchar(15))
RETURNS TABLE
AS
RETURN (
    SELECT
        l.sql_ID AS lead_id,
        l.sql_TITLE AS title,
        l.sql_NAME AS name,
        l.sql_LAST_NAME AS last_name,
        l.sql_COMPANY_TITLE AS company_title,
        l.sql_STATUS_ID AS status_id,
        l.sql_DATE_MODIFY AS date_modify,
        l.sql_ASSIGNED_BY_ID AS operator_id,
        o.name AS operator_name,
        o.last_name AS operator_last_name,
        o.phone_inner AS operator_extension
    FROM dbo.bitrix_leads AS l
    LEFT JOIN dbo.b24sync_operators AS o ON o.user_id = l.sql_ASSIGNED_BY_ID
    WHERE l.sql_ID IN (
        SELECT p.lead_id
        FROM dbo.b24sync_lead_phones AS p
        WHERE @e164 <> '' AND p.e164 = @e164 COLLATE Latin1_General_BIN2
        UNION ALL
        SELECT p.lead_id
        FROM dbo.b24sync_lead_phones AS p
        WHERE @e164 = ''
          AND LEN(@tail) >= 7
          AND @tail COLLATE Latin1_General_BIN2 NOT LIKE '%[^0-9]%'
          AND p.digits_rev LIKE (REVERSE(@tail) + '%') COLLATE Latin1_General_BIN2
    )
);
GO
-- The same from the caller's number as the switch or a person writes it (nvarchar(50)):
-- separators (spaces, -, (, ), ., /, no-break spaces) are dropped, then
--   '+' and 8 to 15 digits, '00…' or '810…'  → international: '+' and the digits;
--   11 digits starting 7 or 8, or 10 digits, whose national part starts 3, 4, 7, 8 or 9
--                                           → Russia / Kazakhstan (+7);
--   anything else (or any other character)   → no E.164: matched on its last @tail_digits
--                                              digits instead (7 to 15; 10 is usual).
-- Only these shapes are read here: national numbers of other countries (BY "8 029…",
-- UA "044…") need E.164 from the dialplan: call b24sync_lookup_caller_keys with it.
CREATE FUNCTION dbo.b24sync_lookup_caller (@number nvarchar(50), @tail_digits int)
RETURNS TABLE
AS
RETURN (
    SELECT
        m.lead_id,
        m.title,
        m.name,
        m.last_name,
        m.company_title,
        m.status_id,
        m.date_modify,
        m.operator_id,
        m.operator_name,
        m.operator_last_name,
        m.operator_extension
    FROM (
        SELECT
            CASE WHEN s.stripped COLLATE Latin1_General_BIN2 LIKE N'%[^0-9]%' THEN N'' ELSE s.stripped END AS digits,
            CASE WHEN LTRIM(@number) COLLATE Latin1_General_BIN2 LIKE N'+%' THEN 1 ELSE 0 END AS plus
        FROM (
            SELECT REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(
                LTRIM(RTRIM(@number)), N' ', N''), N'-', N''), N'(', N''), N')', N''),
                N'.', N''), N'/', N''), N'+', N''), NCHAR(160), N'') AS stripped
        ) AS s
    ) AS n
    CROSS APPLY (
        SELECT CASE
            WHEN n.digits = N'' THEN ''
            WHEN n.plus = 1 AND LEN(n.digits) BETWEEN 8 AND 15 THEN '+' + n.digits
            WHEN n.plus = 1 THEN ''
            WHEN LEFT(n.digits, 2) = N'00' AND LEN(n.digits) BETWEEN 10 AND 17
                THEN '+' + SUBSTRING(n.digits, 3, 15)
            WHEN LEFT(n.digits, 3) = N'810' AND LEN(n.digits) BETWEEN 12 AND 18
                THEN '+' + SUBSTRING(n.digits, 4, 15)
            WHEN LEN(n.digits) = 11 AND LEFT(n.digits, 1) IN (N'7', N'8')
                 AND SUBSTRING(n.digits, 2, 1) IN (N'3', N'4', N'7', N'8', N'9')
                THEN '+7' + RIGHT(n.digits, 10)
            WHEN LEN(n.digits) = 10 AND LEFT(n.digits, 1) IN (N'3', N'4', N'7', N'8', N'9')
                THEN '+7' + n.digits
            ELSE ''
        END AS e164
    ) AS k
    CROSS APPLY dbo.b24sync_lookup_caller_keys(
        k.e164,
        CASE WHEN @tail_digits BETWEEN 1 AND 15 THEN RIGHT(n.digits, @tail_digits) ELSE RIGHT(n.digits, 10) END
    ) AS m
);
GO
IF NOT EXISTS (SELECT 1 FROM dbo.b24sync_migrations WHERE version = 8)
    INSERT INTO dbo.b24sync_migrations (version, name, checksum, applied_at)
    VALUES (8, N'lookup_collation', N'manual', SYSUTCDATETIME());

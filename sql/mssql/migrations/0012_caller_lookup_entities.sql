-- Migration 12: the caller lookup over leads, contacts and companies (docs/caller-lookup.md).
-- Re-creates the view dbo.b24sync_caller_phones and the two inline functions of 0006/0008
-- over the three phones tables (dbo.b24sync_lead_phones, dbo.b24sync_contact_phones,
-- dbo.b24sync_company_phones, migration 0010), with the same parameters, so scenarios
-- written for leads keep working; the functions return one row per record:
-- - entity_type: 'lead', 'contact' or 'company'; entity_id: the record's sql_ID;
-- - priority: 1 for a contact or a company (a known customer), 2 for a lead (a prospect).
--   Order in the calling query (a function cannot):
--   ORDER BY priority, date_modify DESC, entity_id DESC, entity_type
--   and filter by type there too: WHERE entity_type IN ('contact', 'company');
-- - title: a lead's TITLE, a contact's NAME SECOND_NAME LAST_NAME, a company's TITLE;
-- - company_id, company_title: a lead's linked company (when synced) and its COMPANY_TITLE
--   as typed; a contact's primary company (COMPANY_ID) and that company's TITLE; a
--   company itself;
-- - status_or_type: a lead's STATUS_ID, a contact's TYPE_ID, a company's COMPANY_TYPE;
-- - phone_value: the record's matching phone as typed (the first stored, when several);
-- - lead_id and status_id as before (a lead's ID and STATUS_ID; NULL on the other rows).
-- Digits are compared in Latin1_General_BIN2 as in 0008 (every LIKE, the E.164 match), so
-- each branch seeks its table's e164 or digits_rev index (0006, 0010) and only the branch
-- the keys select runs; then the record by its unique sql_ID, the company by its unique
-- sql_ID, the operator by user_id. A COMPANY_ID that is not a number (or has more than 9
-- digits) joins nothing; it never fails the query. Only what SQL Server 2016 has at any
-- database compatibility level (an old Oktell database may keep 100): no TRY_CAST, CONCAT
-- or CONCAT_WS; CASE keeps NULLs out of `+`, whatever CONCAT_NULL_YIELDS_NULL says.
-- The lead's text columns are read COLLATE DATABASE_DEFAULT: an Oktell table made with
-- another collation than b24sync's own tables would otherwise make UNION ALL refuse the
-- columns (a collation conflict).
-- Sent by `b24sync init-db` batch by batch (split at GO) in one transaction; a DBA can run it
-- with sqlcmd after 0010 (each batch re-creates its object; the migration is recorded last).
IF OBJECT_ID(N'dbo.b24sync_caller_phones', N'V') IS NOT NULL DROP VIEW dbo.b24sync_caller_phones;
GO
-- phone → record → company → operator, one row per stored phone, for ad-hoc queries.
CREATE VIEW dbo.b24sync_caller_phones
AS
SELECT
    'lead' AS entity_type,
    l.sql_ID AS entity_id,
    2 AS priority,
    p.e164 AS e164,
    p.digits_rev AS digits_rev,
    p.value AS phone_value,
    p.extension AS phone_extension,
    l.sql_ID AS lead_id,
    l.sql_TITLE COLLATE DATABASE_DEFAULT AS title,
    l.sql_NAME COLLATE DATABASE_DEFAULT AS name,
    l.sql_LAST_NAME COLLATE DATABASE_DEFAULT AS last_name,
    lc.sql_ID AS company_id,
    l.sql_COMPANY_TITLE COLLATE DATABASE_DEFAULT AS company_title,
    l.sql_STATUS_ID COLLATE DATABASE_DEFAULT AS status_id,
    l.sql_STATUS_ID COLLATE DATABASE_DEFAULT AS status_or_type,
    l.sql_DATE_MODIFY AS date_modify,
    l.sql_ASSIGNED_BY_ID COLLATE DATABASE_DEFAULT AS operator_id,
    o.name AS operator_name,
    o.last_name AS operator_last_name,
    o.phone_inner AS operator_extension
FROM dbo.b24sync_lead_phones AS p
INNER JOIN dbo.bitrix_leads AS l ON l.sql_ID = p.lead_id
LEFT JOIN dbo.bitrix_companies AS lc ON lc.sql_ID = CASE WHEN LEN(l.sql_COMPANY_ID) BETWEEN 1 AND 9 AND l.sql_COMPANY_ID COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%' THEN CAST(l.sql_COMPANY_ID AS int) END
LEFT JOIN dbo.b24sync_operators AS o ON o.user_id = l.sql_ASSIGNED_BY_ID
UNION ALL
SELECT
    'contact',
    c.sql_ID,
    1,
    p.e164,
    p.digits_rev,
    p.value,
    p.extension,
    CAST(NULL AS int),
    CAST(NULLIF(STUFF(
        ISNULL(CASE WHEN c.sql_NAME <> N'' THEN N' ' + c.sql_NAME END, N'')
        + ISNULL(CASE WHEN c.sql_SECOND_NAME <> N'' THEN N' ' + c.sql_SECOND_NAME END, N'')
        + ISNULL(CASE WHEN c.sql_LAST_NAME <> N'' THEN N' ' + c.sql_LAST_NAME END, N''),
    1, 1, N''), N'') AS nvarchar(4000)),
    c.sql_NAME,
    c.sql_LAST_NAME,
    co.sql_ID,
    co.sql_TITLE,
    CAST(NULL AS nvarchar(3000)),
    c.sql_TYPE_ID,
    c.sql_DATE_MODIFY,
    c.sql_ASSIGNED_BY_ID,
    o.name,
    o.last_name,
    o.phone_inner
FROM dbo.b24sync_contact_phones AS p
INNER JOIN dbo.bitrix_contacts AS c ON c.sql_ID = p.contact_id
LEFT JOIN dbo.bitrix_companies AS co ON co.sql_ID = CASE WHEN LEN(c.sql_COMPANY_ID) BETWEEN 1 AND 9 AND c.sql_COMPANY_ID COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%' THEN CAST(c.sql_COMPANY_ID AS int) END
LEFT JOIN dbo.b24sync_operators AS o ON o.user_id = c.sql_ASSIGNED_BY_ID
UNION ALL
SELECT
    'company',
    co.sql_ID,
    1,
    p.e164,
    p.digits_rev,
    p.value,
    p.extension,
    CAST(NULL AS int),
    co.sql_TITLE,
    CAST(NULL AS nvarchar(3000)),
    CAST(NULL AS nvarchar(3000)),
    co.sql_ID,
    co.sql_TITLE,
    CAST(NULL AS nvarchar(3000)),
    co.sql_COMPANY_TYPE,
    co.sql_DATE_MODIFY,
    co.sql_ASSIGNED_BY_ID,
    o.name,
    o.last_name,
    o.phone_inner
FROM dbo.b24sync_company_phones AS p
INNER JOIN dbo.bitrix_companies AS co ON co.sql_ID = p.company_id
LEFT JOIN dbo.b24sync_operators AS o ON o.user_id = co.sql_ASSIGNED_BY_ID;
GO
IF OBJECT_ID(N'dbo.b24sync_lookup_caller', N'IF') IS NOT NULL DROP FUNCTION dbo.b24sync_lookup_caller;
GO
IF OBJECT_ID(N'dbo.b24sync_lookup_caller_keys', N'IF') IS NOT NULL DROP FUNCTION dbo.b24sync_lookup_caller_keys;
GO
-- The leads, contacts and companies with a phone matching the keys, with their operators
-- (one row per record; order and filter them in the calling query, see above).
-- @e164: the caller's E.164 number ('+79123456789'), or '' when it is not known; then
-- @tail: the caller's last N digits ('9123456789'), at least 7 digits only, matched against
-- the end of every stored number. Each record's matching phones are grouped by the record
-- (the first one by Id is fetched by the clustered key, for phone_value).
CREATE FUNCTION dbo.b24sync_lookup_caller_keys (@e164 varchar(16), @tail varchar(15))
RETURNS TABLE
AS
RETURN (
    SELECT
        'contact' AS entity_type,
        c.sql_ID AS entity_id,
        1 AS priority,
        CAST(NULL AS int) AS lead_id,
        CAST(NULLIF(STUFF(
            ISNULL(CASE WHEN c.sql_NAME <> N'' THEN N' ' + c.sql_NAME END, N'')
            + ISNULL(CASE WHEN c.sql_SECOND_NAME <> N'' THEN N' ' + c.sql_SECOND_NAME END, N'')
            + ISNULL(CASE WHEN c.sql_LAST_NAME <> N'' THEN N' ' + c.sql_LAST_NAME END, N''),
        1, 1, N''), N'') AS nvarchar(4000)) AS title,
        c.sql_NAME AS name,
        c.sql_LAST_NAME AS last_name,
        co.sql_ID AS company_id,
        co.sql_TITLE AS company_title,
        CAST(NULL AS nvarchar(3000)) AS status_id,
        c.sql_TYPE_ID AS status_or_type,
        c.sql_DATE_MODIFY AS date_modify,
        c.sql_ASSIGNED_BY_ID AS operator_id,
        o.name AS operator_name,
        o.last_name AS operator_last_name,
        o.phone_inner AS operator_extension,
        mp.value AS phone_value
    FROM (
        SELECT x.owner_id, MIN(x.phone_row) AS phone_row
        FROM (
            SELECT p.contact_id AS owner_id, p.Id AS phone_row
            FROM dbo.b24sync_contact_phones AS p
            WHERE @e164 <> '' AND p.e164 = @e164 COLLATE Latin1_General_BIN2
            UNION ALL
            SELECT p.contact_id, p.Id
            FROM dbo.b24sync_contact_phones AS p
            WHERE @e164 = ''
              AND LEN(@tail) >= 7
              AND @tail COLLATE Latin1_General_BIN2 NOT LIKE '%[^0-9]%'
              AND p.digits_rev LIKE (REVERSE(@tail) + '%') COLLATE Latin1_General_BIN2
        ) AS x
        GROUP BY x.owner_id
    ) AS m
    INNER JOIN dbo.b24sync_contact_phones AS mp ON mp.Id = m.phone_row
    INNER JOIN dbo.bitrix_contacts AS c ON c.sql_ID = m.owner_id
    LEFT JOIN dbo.bitrix_companies AS co ON co.sql_ID = CASE WHEN LEN(c.sql_COMPANY_ID) BETWEEN 1 AND 9 AND c.sql_COMPANY_ID COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%' THEN CAST(c.sql_COMPANY_ID AS int) END
    LEFT JOIN dbo.b24sync_operators AS o ON o.user_id = c.sql_ASSIGNED_BY_ID
    UNION ALL
    SELECT
        'company',
        co.sql_ID,
        1,
        CAST(NULL AS int),
        co.sql_TITLE,
        CAST(NULL AS nvarchar(3000)),
        CAST(NULL AS nvarchar(3000)),
        co.sql_ID,
        co.sql_TITLE,
        CAST(NULL AS nvarchar(3000)),
        co.sql_COMPANY_TYPE,
        co.sql_DATE_MODIFY,
        co.sql_ASSIGNED_BY_ID,
        o.name,
        o.last_name,
        o.phone_inner,
        mp.value
    FROM (
        SELECT x.owner_id, MIN(x.phone_row) AS phone_row
        FROM (
            SELECT p.company_id AS owner_id, p.Id AS phone_row
            FROM dbo.b24sync_company_phones AS p
            WHERE @e164 <> '' AND p.e164 = @e164 COLLATE Latin1_General_BIN2
            UNION ALL
            SELECT p.company_id, p.Id
            FROM dbo.b24sync_company_phones AS p
            WHERE @e164 = ''
              AND LEN(@tail) >= 7
              AND @tail COLLATE Latin1_General_BIN2 NOT LIKE '%[^0-9]%'
              AND p.digits_rev LIKE (REVERSE(@tail) + '%') COLLATE Latin1_General_BIN2
        ) AS x
        GROUP BY x.owner_id
    ) AS m
    INNER JOIN dbo.b24sync_company_phones AS mp ON mp.Id = m.phone_row
    INNER JOIN dbo.bitrix_companies AS co ON co.sql_ID = m.owner_id
    LEFT JOIN dbo.b24sync_operators AS o ON o.user_id = co.sql_ASSIGNED_BY_ID
    UNION ALL
    SELECT
        'lead',
        l.sql_ID,
        2,
        l.sql_ID,
        l.sql_TITLE COLLATE DATABASE_DEFAULT,
        l.sql_NAME COLLATE DATABASE_DEFAULT,
        l.sql_LAST_NAME COLLATE DATABASE_DEFAULT,
        lc.sql_ID,
        l.sql_COMPANY_TITLE COLLATE DATABASE_DEFAULT,
        l.sql_STATUS_ID COLLATE DATABASE_DEFAULT,
        l.sql_STATUS_ID COLLATE DATABASE_DEFAULT,
        l.sql_DATE_MODIFY,
        l.sql_ASSIGNED_BY_ID COLLATE DATABASE_DEFAULT,
        o.name,
        o.last_name,
        o.phone_inner,
        mp.value
    FROM (
        SELECT x.owner_id, MIN(x.phone_row) AS phone_row
        FROM (
            SELECT p.lead_id AS owner_id, p.Id AS phone_row
            FROM dbo.b24sync_lead_phones AS p
            WHERE @e164 <> '' AND p.e164 = @e164 COLLATE Latin1_General_BIN2
            UNION ALL
            SELECT p.lead_id, p.Id
            FROM dbo.b24sync_lead_phones AS p
            WHERE @e164 = ''
              AND LEN(@tail) >= 7
              AND @tail COLLATE Latin1_General_BIN2 NOT LIKE '%[^0-9]%'
              AND p.digits_rev LIKE (REVERSE(@tail) + '%') COLLATE Latin1_General_BIN2
        ) AS x
        GROUP BY x.owner_id
    ) AS m
    INNER JOIN dbo.b24sync_lead_phones AS mp ON mp.Id = m.phone_row
    INNER JOIN dbo.bitrix_leads AS l ON l.sql_ID = m.owner_id
    LEFT JOIN dbo.bitrix_companies AS lc ON lc.sql_ID = CASE WHEN LEN(l.sql_COMPANY_ID) BETWEEN 1 AND 9 AND l.sql_COMPANY_ID COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%' THEN CAST(l.sql_COMPANY_ID AS int) END
    LEFT JOIN dbo.b24sync_operators AS o ON o.user_id = l.sql_ASSIGNED_BY_ID
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
        m.entity_type,
        m.entity_id,
        m.priority,
        m.lead_id,
        m.title,
        m.name,
        m.last_name,
        m.company_id,
        m.company_title,
        m.status_id,
        m.status_or_type,
        m.date_modify,
        m.operator_id,
        m.operator_name,
        m.operator_last_name,
        m.operator_extension,
        m.phone_value
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
IF NOT EXISTS (SELECT 1 FROM dbo.b24sync_migrations WHERE version = 12)
    INSERT INTO dbo.b24sync_migrations (version, name, checksum, applied_at)
    VALUES (12, N'caller_lookup_entities', N'manual', SYSUTCDATETIME());

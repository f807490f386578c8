-- Migration 3: the caller lookup (docs/caller-lookup.md). The project's own objects next to
-- the Oktell tables, which stay exactly as they are:
-- - b24sync_lead_phones: every PHONE value of bitrix_lead_contacts, normalised at load time
--   (E.164 and the extension apart), replaced per lead in the same transaction as the
--   lead's contact values, so a number removed in Bitrix24 stops matching with it;
-- - b24sync_operators: the Bitrix24 users leads are assigned to (user.get), by user ID;
-- - b24sync_caller_phones: the view the lookup query reads (phone → lead → operator).
-- digits_rev holds the number's last 15 digits last-first: "ends with these N digits"
-- becomes "starts with", which one index answers for any N.

CREATE TABLE IF NOT EXISTS b24sync_lead_phones (
    Id INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_id INTEGER NOT NULL,
    contact_id NVARCHAR(2000) NULL,
    value NVARCHAR(2000) NOT NULL,
    e164 VARCHAR(16) NULL,
    extension VARCHAR(10) NULL,
    digits_rev VARCHAR(15) NULL,
    normalisable INTEGER NOT NULL,
    reason NVARCHAR(400) NULL
);
CREATE INDEX IF NOT EXISTS ix_b24sync_lead_phones_lead
    ON b24sync_lead_phones (lead_id);
-- Covering (lead_id included): the lookup reads only the index, then seeks bitrix_leads.
CREATE INDEX IF NOT EXISTS ix_b24sync_lead_phones_e164
    ON b24sync_lead_phones (e164, lead_id);
CREATE INDEX IF NOT EXISTS ix_b24sync_lead_phones_digits_rev
    ON b24sync_lead_phones (digits_rev, lead_id);

CREATE TABLE IF NOT EXISTS b24sync_operators (
    user_id TEXT PRIMARY KEY,
    name NVARCHAR(200) NULL,
    last_name NVARCHAR(200) NULL,
    email NVARCHAR(200) NULL,
    phone_inner NVARCHAR(50) NULL,
    active INTEGER NULL,
    -- When the details were last read from user.get (UTC); NULL: only the ID is known.
    details_at TEXT NULL,
    updated_at TEXT NOT NULL
);

CREATE VIEW IF NOT EXISTS b24sync_caller_phones AS
SELECT
    p.e164,
    p.digits_rev,
    p.value AS phone_value,
    p.extension AS phone_extension,
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
FROM b24sync_lead_phones AS p
INNER JOIN bitrix_leads AS l ON l.sql_ID = p.lead_id
LEFT JOIN b24sync_operators AS o ON o.user_id = l.sql_ASSIGNED_BY_ID;

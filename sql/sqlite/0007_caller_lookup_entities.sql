-- Migration 7: the caller lookup over leads, contacts and companies (docs/caller-lookup.md).
-- b24sync_caller_phones, the view for ad-hoc queries, is redefined over the three phones
-- tables (b24sync_lead_phones, b24sync_contact_phones, b24sync_company_phones): one row
-- per stored phone with the record it belongs to, its company and its operator.
-- - entity_type: 'lead', 'contact' or 'company'; entity_id: the record's sql_ID;
-- - priority: 1 for a contact or a company (a known customer), 2 for a lead (a prospect):
--   a caller is shown `ORDER BY priority, date_modify DESC, entity_id DESC, entity_type`;
-- - title: a lead's TITLE, a contact's NAME SECOND_NAME LAST_NAME, a company's TITLE;
-- - company_id / company_title: a lead's linked company (when synced) / its COMPANY_TITLE;
--   a contact's primary company (COMPANY_ID) and that company's TITLE; a company itself;
-- - status_or_type: a lead's STATUS_ID, a contact's TYPE_ID, a company's COMPANY_TYPE;
-- - lead_id and status_id: as before contacts were added (a lead's ID and STATUS_ID; NULL
--   on the other rows), so queries written for leads keep working.
-- A view is only a stored query: dropping and re-creating it touches no data.
DROP VIEW IF EXISTS b24sync_caller_phones;
CREATE VIEW b24sync_caller_phones AS
SELECT
    'lead' AS entity_type,
    l.sql_ID AS entity_id,
    2 AS priority,
    p.e164,
    p.digits_rev,
    p.value AS phone_value,
    p.extension AS phone_extension,
    l.sql_ID AS lead_id,
    l.sql_TITLE AS title,
    l.sql_NAME AS name,
    l.sql_LAST_NAME AS last_name,
    lc.sql_ID AS company_id,
    l.sql_COMPANY_TITLE AS company_title,
    l.sql_STATUS_ID AS status_id,
    l.sql_STATUS_ID AS status_or_type,
    l.sql_DATE_MODIFY AS date_modify,
    l.sql_ASSIGNED_BY_ID AS operator_id,
    o.name AS operator_name,
    o.last_name AS operator_last_name,
    o.phone_inner AS operator_extension
FROM b24sync_lead_phones AS p
INNER JOIN bitrix_leads AS l ON l.sql_ID = p.lead_id
LEFT JOIN bitrix_companies AS lc ON lc.sql_ID = l.sql_COMPANY_ID
LEFT JOIN b24sync_operators AS o ON o.user_id = l.sql_ASSIGNED_BY_ID
UNION ALL
SELECT
    'contact',
    c.sql_ID,
    1,
    p.e164,
    p.digits_rev,
    p.value,
    p.extension,
    NULL,
    NULLIF(SUBSTR(
        COALESCE(' ' || NULLIF(c.sql_NAME, ''), '')
        || COALESCE(' ' || NULLIF(c.sql_SECOND_NAME, ''), '')
        || COALESCE(' ' || NULLIF(c.sql_LAST_NAME, ''), ''), 2), ''),
    c.sql_NAME,
    c.sql_LAST_NAME,
    co.sql_ID,
    co.sql_TITLE,
    NULL,
    c.sql_TYPE_ID,
    c.sql_DATE_MODIFY,
    c.sql_ASSIGNED_BY_ID,
    o.name,
    o.last_name,
    o.phone_inner
FROM b24sync_contact_phones AS p
INNER JOIN bitrix_contacts AS c ON c.sql_ID = p.contact_id
LEFT JOIN bitrix_companies AS co ON co.sql_ID = c.sql_COMPANY_ID
LEFT JOIN b24sync_operators AS o ON o.user_id = c.sql_ASSIGNED_BY_ID
UNION ALL
SELECT
    'company',
    co.sql_ID,
    1,
    p.e164,
    p.digits_rev,
    p.value,
    p.extension,
    NULL,
    co.sql_TITLE,
    NULL,
    NULL,
    co.sql_ID,
    co.sql_TITLE,
    NULL,
    co.sql_COMPANY_TYPE,
    co.sql_DATE_MODIFY,
    co.sql_ASSIGNED_BY_ID,
    o.name,
    o.last_name,
    o.phone_inner
FROM b24sync_company_phones AS p
INNER JOIN bitrix_companies AS co ON co.sql_ID = p.company_id
LEFT JOIN b24sync_operators AS o ON o.user_id = co.sql_ASSIGNED_BY_ID;

-- The caller lookup (docs/caller-lookup.md) over leads, contacts and companies, one row per
-- record. ?1 the caller's E.164 number ('' when it does not normalise); ?2, ?3 the range of
-- reversed digits for the "last N digits" fallback (?2 = the caller's last N digits
-- reversed, ?3 = ?2 || ':', the next string after every digit string starting with ?2;
-- both '' when not falling back, an empty range); ?4 the most rows; ?5, ?6, ?7 the entity
-- types wanted ('lead', 'contact', 'company'; repeat one to ask for fewer).
-- One branch per phones table; in each, the OR is a MULTI-INDEX OR (a seek on the table's
-- e164 index and one on its digits_rev index), grouped to one row per record (the first
-- matching phone by Id, fetched by rowid), then the record by its unique sql_ID, its
-- company by sql_ID and its operator by user_id. A branch whose type is not wanted stops
-- at its first, constant test.
-- Order: contacts and companies (known customers, priority 1) before leads (prospects,
-- priority 2), then the most recently modified, then the higher ID.
SELECT
    'contact' AS entity_type,
    c.sql_ID AS entity_id,
    1 AS priority,
    NULLIF(SUBSTR(
        COALESCE(' ' || NULLIF(c.sql_NAME, ''), '')
        || COALESCE(' ' || NULLIF(c.sql_SECOND_NAME, ''), '')
        || COALESCE(' ' || NULLIF(c.sql_LAST_NAME, ''), ''), 2), '') AS title,
    c.sql_NAME AS name,
    c.sql_LAST_NAME AS last_name,
    co.sql_ID AS company_id,
    co.sql_TITLE AS company_title,
    c.sql_TYPE_ID AS status_or_type,
    c.sql_DATE_MODIFY AS date_modify,
    c.sql_ASSIGNED_BY_ID AS operator_id,
    o.name AS operator_name,
    o.last_name AS operator_last_name,
    o.phone_inner AS operator_extension,
    mp.value AS phone_value
FROM (
    SELECT contact_id AS owner_id, MIN(Id) AS phone_row
    FROM b24sync_contact_phones
    WHERE 'contact' IN (?5, ?6, ?7)
      AND (e164 = ?1 OR (digits_rev >= ?2 AND digits_rev < ?3))
    GROUP BY contact_id
) AS m
INNER JOIN b24sync_contact_phones AS mp ON mp.Id = m.phone_row
INNER JOIN bitrix_contacts AS c ON c.sql_ID = m.owner_id
LEFT JOIN bitrix_companies AS co ON co.sql_ID = c.sql_COMPANY_ID
LEFT JOIN b24sync_operators AS o ON o.user_id = c.sql_ASSIGNED_BY_ID
UNION ALL
SELECT
    'company',
    co.sql_ID,
    1,
    co.sql_TITLE,
    NULL,
    NULL,
    co.sql_ID,
    co.sql_TITLE,
    co.sql_COMPANY_TYPE,
    co.sql_DATE_MODIFY,
    co.sql_ASSIGNED_BY_ID,
    o.name,
    o.last_name,
    o.phone_inner,
    mp.value
FROM (
    SELECT company_id AS owner_id, MIN(Id) AS phone_row
    FROM b24sync_company_phones
    WHERE 'company' IN (?5, ?6, ?7)
      AND (e164 = ?1 OR (digits_rev >= ?2 AND digits_rev < ?3))
    GROUP BY company_id
) AS m
INNER JOIN b24sync_company_phones AS mp ON mp.Id = m.phone_row
INNER JOIN bitrix_companies AS co ON co.sql_ID = m.owner_id
LEFT JOIN b24sync_operators AS o ON o.user_id = co.sql_ASSIGNED_BY_ID
UNION ALL
SELECT
    'lead',
    l.sql_ID,
    2,
    l.sql_TITLE,
    l.sql_NAME,
    l.sql_LAST_NAME,
    lc.sql_ID,
    l.sql_COMPANY_TITLE,
    l.sql_STATUS_ID,
    l.sql_DATE_MODIFY,
    l.sql_ASSIGNED_BY_ID,
    o.name,
    o.last_name,
    o.phone_inner,
    mp.value
FROM (
    SELECT lead_id AS owner_id, MIN(Id) AS phone_row
    FROM b24sync_lead_phones
    WHERE 'lead' IN (?5, ?6, ?7)
      AND (e164 = ?1 OR (digits_rev >= ?2 AND digits_rev < ?3))
    GROUP BY lead_id
) AS m
INNER JOIN b24sync_lead_phones AS mp ON mp.Id = m.phone_row
INNER JOIN bitrix_leads AS l ON l.sql_ID = m.owner_id
LEFT JOIN bitrix_companies AS lc ON lc.sql_ID = l.sql_COMPANY_ID
LEFT JOIN b24sync_operators AS o ON o.user_id = l.sql_ASSIGNED_BY_ID
ORDER BY priority, date_modify DESC, entity_id DESC, entity_type
LIMIT ?4;

-- Staged contact values not present yet (same matching as contacts_delete.sql).
INSERT INTO bitrix_lead_contacts (sql_LEAD_ID, sql_CONTACT_ID, sql_VALUE_TYPE, sql_VALUE, sql_TYPE_ID)
SELECT s.sql_LEAD_ID, s.sql_CONTACT_ID, s.sql_VALUE_TYPE, s.sql_VALUE, s.sql_TYPE_ID
FROM temp.stage_contacts AS s
WHERE NOT EXISTS (
    SELECT 1 FROM bitrix_lead_contacts AS c
    WHERE c.sql_LEAD_ID = s.sql_LEAD_ID
      AND c.sql_CONTACT_ID IS s.sql_CONTACT_ID
      AND (s.sql_CONTACT_ID IS NOT NULL
           OR (c.sql_TYPE_ID IS s.sql_TYPE_ID
               AND c.sql_VALUE IS s.sql_VALUE
               AND c.sql_VALUE_TYPE IS s.sql_VALUE_TYPE)))
ORDER BY s.rowid;

-- Keyed contact values whose type or value changed in Bitrix24 (the row keeps its Id).
UPDATE bitrix_lead_contacts AS c SET
    sql_VALUE_TYPE = s.sql_VALUE_TYPE,
    sql_VALUE = s.sql_VALUE,
    sql_TYPE_ID = s.sql_TYPE_ID
FROM temp.stage_contacts AS s
WHERE s.sql_CONTACT_ID IS NOT NULL
  AND c.sql_LEAD_ID = s.sql_LEAD_ID
  AND c.sql_CONTACT_ID = s.sql_CONTACT_ID
  AND (c.sql_VALUE_TYPE IS NOT s.sql_VALUE_TYPE
       OR c.sql_VALUE IS NOT s.sql_VALUE
       OR c.sql_TYPE_ID IS NOT s.sql_TYPE_ID);

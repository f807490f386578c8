-- A staged lead's contact set is replaced. Delete its rows that match no staged value:
-- a keyed row (sql_CONTACT_ID not NULL) matches by (lead, contact id), its values may
-- change (contacts_update.sql keeps its Id); an unkeyed row matches only an identical
-- staged row. Also delete repeats of one key (left by the old scripts), keeping the lowest Id.
DELETE FROM bitrix_lead_contacts AS c
WHERE c.sql_LEAD_ID IN (SELECT sql_ID FROM temp.stage_leads)
  AND (
       NOT EXISTS (
           SELECT 1 FROM temp.stage_contacts AS s
           WHERE s.sql_LEAD_ID = c.sql_LEAD_ID
             AND s.sql_CONTACT_ID IS c.sql_CONTACT_ID
             AND (c.sql_CONTACT_ID IS NOT NULL
                  OR (s.sql_TYPE_ID IS c.sql_TYPE_ID
                      AND s.sql_VALUE IS c.sql_VALUE
                      AND s.sql_VALUE_TYPE IS c.sql_VALUE_TYPE)))
    OR EXISTS (
           SELECT 1 FROM bitrix_lead_contacts AS d
           WHERE d.sql_LEAD_ID = c.sql_LEAD_ID
             AND d.Id < c.Id
             AND d.sql_CONTACT_ID IS c.sql_CONTACT_ID
             AND (c.sql_CONTACT_ID IS NOT NULL
                  OR (d.sql_TYPE_ID IS c.sql_TYPE_ID
                      AND d.sql_VALUE IS c.sql_VALUE
                      AND d.sql_VALUE_TYPE IS c.sql_VALUE_TYPE)))
  );

-- Staged multi-field values not present yet (same matching as multi_delete.sql).
INSERT INTO {{multi_table}} ({{multi_owner}}, {{multi_value_id}}, sql_VALUE_TYPE, sql_VALUE, sql_TYPE_ID)
SELECT s.owner_id, s.value_id, s.sql_VALUE_TYPE, s.sql_VALUE, s.sql_TYPE_ID
FROM temp.{{stage_multi}} AS s
WHERE NOT EXISTS (
    SELECT 1 FROM {{multi_table}} AS c
    WHERE c.{{multi_owner}} = s.owner_id
      AND c.{{multi_value_id}} IS s.value_id
      AND (s.value_id IS NOT NULL
           OR (c.sql_TYPE_ID IS s.sql_TYPE_ID
               AND c.sql_VALUE IS s.sql_VALUE
               AND c.sql_VALUE_TYPE IS s.sql_VALUE_TYPE)))
ORDER BY s.rowid;

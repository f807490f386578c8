-- Keyed multi-field values whose type or value changed in Bitrix24 (the row keeps its Id).
UPDATE {{multi_table}} AS c SET
    sql_VALUE_TYPE = s.sql_VALUE_TYPE,
    sql_VALUE = s.sql_VALUE,
    sql_TYPE_ID = s.sql_TYPE_ID
FROM temp.{{stage_multi}} AS s
WHERE s.value_id IS NOT NULL
  AND c.{{multi_owner}} = s.owner_id
  AND c.{{multi_value_id}} = s.value_id
  AND (c.sql_VALUE_TYPE IS NOT s.sql_VALUE_TYPE
       OR c.sql_VALUE IS NOT s.sql_VALUE
       OR c.sql_TYPE_ID IS NOT s.sql_TYPE_ID);

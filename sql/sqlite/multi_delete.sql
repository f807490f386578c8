-- A staged record's multi-field values are replaced. Delete its rows that match no staged
-- value: a keyed row (the value ID not NULL) matches by (record, value ID), its values may
-- change (multi_update.sql keeps its Id); an unkeyed row matches only an identical
-- staged row. Also delete repeats of one key (left by the old scripts), keeping the lowest Id.
DELETE FROM {{multi_table}} AS c
WHERE c.{{multi_owner}} IN (SELECT sql_ID FROM temp.{{stage}})
  AND (
       NOT EXISTS (
           SELECT 1 FROM temp.{{stage_multi}} AS s
           WHERE s.owner_id = c.{{multi_owner}}
             AND s.value_id IS c.{{multi_value_id}}
             AND (c.{{multi_value_id}} IS NOT NULL
                  OR (s.sql_TYPE_ID IS c.sql_TYPE_ID
                      AND s.sql_VALUE IS c.sql_VALUE
                      AND s.sql_VALUE_TYPE IS c.sql_VALUE_TYPE)))
    OR EXISTS (
           SELECT 1 FROM {{multi_table}} AS d
           WHERE d.{{multi_owner}} = c.{{multi_owner}}
             AND d.Id < c.Id
             AND d.{{multi_value_id}} IS c.{{multi_value_id}}
             AND (c.{{multi_value_id}} IS NOT NULL
                  OR (d.sql_TYPE_ID IS c.sql_TYPE_ID
                      AND d.sql_VALUE IS c.sql_VALUE
                      AND d.sql_VALUE_TYPE IS c.sql_VALUE_TYPE)))
  );

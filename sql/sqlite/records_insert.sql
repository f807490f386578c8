-- Records not yet present (runs after records_update.sql).
INSERT INTO {{table}} (
    sql_ID,
{{columns}}
)
SELECT
    s.sql_ID,
{{s_columns}}
FROM temp.{{stage}} AS s
WHERE NOT EXISTS (SELECT 1 FROM {{table}} AS l WHERE l.sql_ID = s.sql_ID)
ORDER BY s.sql_ID;

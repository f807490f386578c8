-- Records already present whose values changed; an unchanged row is not touched.
-- The unary + keeps the planner from scanning every lead and probing the (small) staging
-- table by its key; it walks the staged rows and looks each lead up by the index instead.
UPDATE {{table}} AS l SET
{{set_columns}}
FROM temp.{{stage}} AS s
WHERE l.sql_ID = +s.sql_ID
  AND (
{{differs}}
  );

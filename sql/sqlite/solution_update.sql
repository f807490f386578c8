-- The unary + makes the planner walk the staged rows (see leads_update.sql).
UPDATE bitrix_lead_solution AS o
SET sql_solution = s.sql_solution
FROM temp.stage_leads AS s
WHERE o.sql_LEAD_ID = +s.sql_ID
  AND s.sql_solution IS NOT NULL
  AND o.sql_solution IS NOT s.sql_solution;

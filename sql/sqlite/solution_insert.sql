INSERT INTO bitrix_lead_solution (sql_LEAD_ID, sql_solution)
SELECT s.sql_ID, s.sql_solution
FROM temp.stage_leads AS s
WHERE s.sql_solution IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM bitrix_lead_solution AS o WHERE o.sql_LEAD_ID = s.sql_ID)
ORDER BY s.sql_ID;

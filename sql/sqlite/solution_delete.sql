-- At most one solution row per lead: drop it when the lead has none now, and drop
-- repeats left by the old scripts (keeping the lowest Id).
DELETE FROM bitrix_lead_solution AS o
WHERE o.sql_LEAD_ID IN (SELECT sql_ID FROM temp.stage_leads WHERE sql_solution IS NULL)
   OR (o.sql_LEAD_ID IN (SELECT sql_ID FROM temp.stage_leads)
       AND EXISTS (SELECT 1 FROM bitrix_lead_solution AS d
                   WHERE d.sql_LEAD_ID = o.sql_LEAD_ID AND d.Id < o.Id));

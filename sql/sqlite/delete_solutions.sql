-- A deleted lead's bitrix_lead_solution rows (the lead's only; see delete_dependents.sql).
DELETE FROM bitrix_lead_solution WHERE sql_LEAD_ID IN (SELECT sql_ID FROM stage_delete_ids);

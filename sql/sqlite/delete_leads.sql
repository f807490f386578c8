DELETE FROM bitrix_leads WHERE sql_ID IN (SELECT sql_ID FROM stage_delete_ids);

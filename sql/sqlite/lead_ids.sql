SELECT sql_ID FROM bitrix_leads ORDER BY sql_ID;

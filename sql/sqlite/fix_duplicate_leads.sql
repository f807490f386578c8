DELETE FROM bitrix_leads WHERE Id NOT IN (SELECT MAX(Id) FROM bitrix_leads GROUP BY sql_ID);

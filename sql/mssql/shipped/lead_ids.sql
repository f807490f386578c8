-- Every lead ID in the table, for the deletion check (compared with the portal's IDs).
SELECT sql_ID FROM dbo.bitrix_leads ORDER BY sql_ID;

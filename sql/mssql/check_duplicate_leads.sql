-- Before creating the unique index on bitrix_leads(sql_ID): are there duplicate sql_ID rows
-- (left by the original row-by-row scripts)? First result: how many IDs are duplicated and
-- how many surplus rows there are; second: up to ten examples for the message.
SELECT COUNT(*) AS duplicated_ids, ISNULL(SUM(d.copies - 1), 0) AS surplus_rows
FROM (SELECT sql_ID, COUNT(*) AS copies FROM dbo.bitrix_leads GROUP BY sql_ID HAVING COUNT(*) > 1) AS d;
SELECT TOP (10) sql_ID, COUNT(*) AS copies
FROM dbo.bitrix_leads
GROUP BY sql_ID
HAVING COUNT(*) > 1
ORDER BY sql_ID;

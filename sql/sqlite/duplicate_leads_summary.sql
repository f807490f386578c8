-- How many sql_ID values occur more than once, and how many surplus rows that makes.
SELECT COUNT(*), COALESCE(SUM(n - 1), 0)
FROM (SELECT COUNT(*) AS n FROM bitrix_leads GROUP BY sql_ID HAVING COUNT(*) > 1);

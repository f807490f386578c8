-- Every record the entity's table holds, for the deletion check.
SELECT sql_ID FROM {{table}} ORDER BY sql_ID;

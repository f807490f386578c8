-- Every record ID in the entity's table (a template, see src/load/mssql/entity_sql.rs), for
-- the deletion check (compared with the portal's IDs).
SELECT sql_ID FROM dbo.{{table}} ORDER BY sql_ID;

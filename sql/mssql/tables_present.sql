-- Which of the tables oktell_tables.sql creates exist already (before init-db runs it), so
-- init-db can say what it created.
SELECT t.name
FROM (VALUES (N'bitrix_oauth'), (N'bitrix_leads'), (N'bitrix_lead_contacts'), (N'bitrix_lead_solution'),
             (N'bitrix_import_lead_error'), (N'bitrix_lead_runtime'), (N'b24sync_migrations')) AS t (name)
WHERE OBJECT_ID(N'dbo.' + t.name, N'U') IS NOT NULL;

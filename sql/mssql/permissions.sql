-- `b24sync doctor`: what this login may do. HAS_PERMS_BY_NAME answers 1 (yes) or 0 (no) for
-- the current login and user, counting role memberships and grants on the schema, and NULL
-- for an object that does not exist (such rows are left out).
-- First result: what `b24sync init-db` needs to create tables and indexes in dbo.
SELECT HAS_PERMS_BY_NAME(DB_NAME(), N'DATABASE', N'CREATE TABLE') AS create_table,
       HAS_PERMS_BY_NAME(N'dbo', N'SCHEMA', N'ALTER') AS alter_schema;
-- Second: what a sync needs on each table it touches (src/load/mssql/ops.rs SYNC_RIGHTS
-- says which of these it needs where). ALTER on bitrix_lead_runtime is only for creating its
-- row Id = 1 (SET IDENTITY_INSERT, runtime_row.sql), which init-db does once.
SELECT t.name AS table_name,
       HAS_PERMS_BY_NAME(N'dbo.' + t.name, N'OBJECT', N'SELECT') AS can_select,
       HAS_PERMS_BY_NAME(N'dbo.' + t.name, N'OBJECT', N'INSERT') AS can_insert,
       HAS_PERMS_BY_NAME(N'dbo.' + t.name, N'OBJECT', N'UPDATE') AS can_update,
       HAS_PERMS_BY_NAME(N'dbo.' + t.name, N'OBJECT', N'DELETE') AS can_delete,
       HAS_PERMS_BY_NAME(N'dbo.' + t.name, N'OBJECT', N'ALTER') AS can_alter
FROM (VALUES (N'bitrix_oauth'), (N'bitrix_leads'), (N'bitrix_lead_contacts'), (N'bitrix_lead_solution'),
             (N'bitrix_import_lead_error'), (N'bitrix_lead_runtime'), (N'b24sync_migrations'),
             (N'b24sync_state'), (N'b24sync_runs'), (N'b24sync_lead_phones'),
             (N'b24sync_operators'), (N'b24sync_lead_fingerprints'),
             (N'bitrix_contacts'), (N'bitrix_contact_multifields'), (N'bitrix_import_contact_error'),
             (N'b24sync_contact_phones'), (N'b24sync_contact_fingerprints'),
             (N'bitrix_companies'), (N'bitrix_company_multifields'), (N'bitrix_import_company_error'),
             (N'b24sync_company_phones'), (N'b24sync_company_fingerprints'),
             (N'b24sync_event_queue')) AS t (name)
WHERE OBJECT_ID(N'dbo.' + t.name, N'U') IS NOT NULL;
-- Third: whether bitrix_lead_runtime already has its row Id = 1 (then ALTER is not needed).
-- Only read when it may be read, so a missing grant is reported, not raised.
IF OBJECT_ID(N'dbo.bitrix_lead_runtime', N'U') IS NOT NULL
   AND HAS_PERMS_BY_NAME(N'dbo.bitrix_lead_runtime', N'OBJECT', N'SELECT') = 1
    SELECT COUNT(*) AS runtime_rows FROM dbo.bitrix_lead_runtime WHERE Id = 1;
ELSE
    SELECT CAST(0 AS int) AS runtime_rows;

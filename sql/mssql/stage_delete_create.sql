-- (Re)create the per-connection table the IDs of leads deleted in Bitrix24 are bulk-loaded
-- into before delete_leads.sql removes them. Sent as a plain batch (not through
-- sp_executesql), or the table would vanish when that inner scope ends; a table a failed
-- earlier call left on this pooled connection is dropped first. The loader sends each ID
-- once (the primary key would refuse a repeat). SQL Server 2012+: no DROP TABLE IF EXISTS.
IF OBJECT_ID(N'tempdb..#stage_delete_ids', N'U') IS NOT NULL DROP TABLE #stage_delete_ids;
CREATE TABLE #stage_delete_ids (
        sql_ID int NOT NULL PRIMARY KEY
);

-- (Re)create the per-connection staging tables a batch of one entity is bulk-loaded into.
-- A template: src/load/mssql/entity_sql.rs fills in the entity's names and columns from the
-- schema description ({{stage}} is #stage_leads for the lead, #stage_contacts for contacts).
-- #temp tables live as long as the pooled connection's session, so each batch drops what the
-- previous batch of this entity on this connection left and starts empty (a table another
-- entity's batch left under the same name is dropped the same way). This must be sent as a
-- plain batch (not through sp_executesql), or the tables would vanish when that inner scope
-- ends.
-- Types are the bulk-friendly ones (tiberius cannot bulk-load into ntext or datetime):
-- nvarchar(max) and datetime2(0); the upsert converts into the tables' types. Text columns
-- take the database's collation so comparisons with the tables never hit a collation
-- conflict when tempdb's default collation differs from the database's.
-- Written for SQL Server 2012+: `DROP TABLE IF EXISTS` (2016+) is avoided on purpose.
IF OBJECT_ID(N'tempdb..{{stage}}', N'U') IS NOT NULL DROP TABLE {{stage}};
IF OBJECT_ID(N'tempdb..{{stage_multi}}', N'U') IS NOT NULL DROP TABLE {{stage_multi}};
IF OBJECT_ID(N'tempdb..#stage_errors', N'U') IS NOT NULL DROP TABLE #stage_errors;
IF OBJECT_ID(N'tempdb..#stage_fingerprints', N'U') IS NOT NULL DROP TABLE #stage_fingerprints;

-- One row per record of the batch: sql_ID, the entity's fields in the description's order
-- (the bulk load sends them in this order), then, for the lead, its solution.
CREATE TABLE {{stage}} (
        sql_ID int NOT NULL PRIMARY KEY,
{{stage_columns}}{{#solution}},
        sql_solution nvarchar(max) COLLATE DATABASE_DEFAULT NULL{{/solution}}
);

-- One row per multi-field value of the batch's records; seq keeps Bitrix24's order for new Ids.
CREATE TABLE {{stage_multi}} (
        seq int NOT NULL PRIMARY KEY,
        {{multi_owner}} int NOT NULL,
        {{multi_value_id}} nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_VALUE_TYPE nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_VALUE nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_TYPE_ID nvarchar(max) COLLATE DATABASE_DEFAULT NULL
);

-- The error rows the batch should leave in {{error_table}} (model::Batch::error_rows).
-- sql_ID has the column's own type, so comparing it with the table's sql_ID seeks the index.
CREATE TABLE #stage_errors (
        seq int NOT NULL PRIMARY KEY,
        sql_ID nvarchar(2000) COLLATE DATABASE_DEFAULT NULL,
        sql_error nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        {{error_json}} nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_date_error datetime2(0) NULL
);

-- What the batch leaves in dbo.{{fingerprints_table}} (prepare::Fingerprints::rows_for):
-- one row per record, its fingerprint or NULL (delete the stored one); see fingerprints_sync.sql.
CREATE TABLE #stage_fingerprints (
        {{fingerprint_key}} int NOT NULL PRIMARY KEY,
        fingerprint bigint NULL
);

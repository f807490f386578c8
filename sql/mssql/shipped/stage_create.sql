-- (Re)create the per-connection staging tables a batch is bulk-loaded into.
-- #temp tables live as long as the pooled connection's session, so each batch drops what the
-- previous batch on this connection left and starts empty. This must be sent as a plain batch
-- (not through sp_executesql), or the tables would vanish when that inner scope ends.
-- Types are the bulk-friendly ones (tiberius cannot bulk-load into ntext or datetime):
-- nvarchar(max) and datetime2(0); the upsert converts into the Oktell types. Text columns
-- take the database's collation so comparisons with the Oktell tables never hit a collation
-- conflict when tempdb's default collation differs from the database's.
-- Written for SQL Server 2012+: `DROP TABLE IF EXISTS` (2016+) is avoided on purpose.
IF OBJECT_ID(N'tempdb..#stage_leads', N'U') IS NOT NULL DROP TABLE #stage_leads;
IF OBJECT_ID(N'tempdb..#stage_contacts', N'U') IS NOT NULL DROP TABLE #stage_contacts;
IF OBJECT_ID(N'tempdb..#stage_errors', N'U') IS NOT NULL DROP TABLE #stage_errors;
IF OBJECT_ID(N'tempdb..#stage_fingerprints', N'U') IS NOT NULL DROP TABLE #stage_fingerprints;

-- One row per lead of the batch: sql_ID, the 33 contract columns in model::LEAD_COLUMNS
-- order (the bulk load sends them in this order), then the lead's solution.
CREATE TABLE #stage_leads (
        sql_ID int NOT NULL PRIMARY KEY,
        sql_ADDRESS nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_ADDRESS_2 nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_ADDRESS_CITY nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_ADDRESS_COUNTRY nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_ADDRESS_COUNTRY_CODE nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_ADDRESS_POSTAL_CODE nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_ADDRESS_PROVINCE nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_ADDRESS_REGION nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_ASSIGNED_BY_ID nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_BIRTHDATE datetime2(0) NULL,
        sql_COMMENTS nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_COMPANY_ID nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_COMPANY_TITLE nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_CONTACT_ID nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_CREATED_BY_ID nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_CURRENCY_ID nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_DATE_CLOSED datetime2(0) NULL,
        sql_DATE_CREATE datetime2(0) NULL,
        sql_DATE_MODIFY datetime2(0) NULL,
        sql_LAST_NAME nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_MODIFY_BY_ID nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_NAME nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_OPENED nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_OPPORTUNITY nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_ORIGIN_ID nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_ORIGINATOR_ID nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_POST nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_SECOND_NAME nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_SOURCE_DESCRIPTION nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_SOURCE_ID nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_STATUS_DESCRIPTION nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_STATUS_ID nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_TITLE nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_solution nvarchar(max) COLLATE DATABASE_DEFAULT NULL
);

-- One row per contact value of the batch's leads; seq keeps Bitrix24's order for new Ids.
CREATE TABLE #stage_contacts (
        seq int NOT NULL PRIMARY KEY,
        sql_LEAD_ID int NOT NULL,
        sql_CONTACT_ID nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_VALUE_TYPE nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_VALUE nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_TYPE_ID nvarchar(max) COLLATE DATABASE_DEFAULT NULL
);

-- The error rows the batch should leave in bitrix_import_lead_error (model::Batch::error_rows).
-- sql_ID has the column's own type, so comparing it with the table's sql_ID seeks the index.
CREATE TABLE #stage_errors (
        seq int NOT NULL PRIMARY KEY,
        sql_ID nvarchar(2000) COLLATE DATABASE_DEFAULT NULL,
        sql_error nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_full_lead_info nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        sql_date_error datetime2(0) NULL
);

-- What the batch leaves in dbo.b24sync_lead_fingerprints (prepare::Fingerprints::rows_for):
-- one row per lead, its fingerprint or NULL (delete the stored one); see fingerprints_sync.sql.
CREATE TABLE #stage_fingerprints (
        lead_id int NOT NULL PRIMARY KEY,
        fingerprint bigint NULL
);

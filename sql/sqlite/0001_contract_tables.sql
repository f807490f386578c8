-- Migration 1: the six Oktell contract tables (same names and columns as on SQL Server,
-- see docs/oktell-schema.md), the indexes the loader needs, and b24sync_state.
-- IF NOT EXISTS: a copied or hand-made database keeps its tables and data.
-- Datetime columns hold text 'YYYY-MM-DD HH:MM:SS', so they sort and compare as text.

CREATE TABLE IF NOT EXISTS bitrix_oauth (
    Id INTEGER PRIMARY KEY AUTOINCREMENT,
    access_token NVARCHAR(2000) NULL,
    expires_in NVARCHAR(2000) NULL,
    scope NVARCHAR(2000) NULL,
    user_id NVARCHAR(2000) NULL,
    refresh_token NVARCHAR(2000) NULL,
    domain NVARCHAR(2000) NULL,
    member_id NVARCHAR(2000) NULL,
    redirect_uri NVARCHAR(2000) NULL,
    client_id NVARCHAR(2000) NULL,
    client_secret NVARCHAR(2000) NULL,
    code NVARCHAR(2000) NULL,
    dateexec DATETIME NULL
);

CREATE TABLE IF NOT EXISTS bitrix_leads (
    Id INTEGER PRIMARY KEY AUTOINCREMENT,
    sql_ID INTEGER NOT NULL,
    sql_ADDRESS NVARCHAR(3000) NULL,
    sql_ADDRESS_2 NVARCHAR(3000) NULL,
    sql_ADDRESS_CITY NVARCHAR(3000) NULL,
    sql_ADDRESS_COUNTRY NVARCHAR(3000) NULL,
    sql_ADDRESS_COUNTRY_CODE NVARCHAR(3000) NULL,
    sql_ADDRESS_POSTAL_CODE NVARCHAR(3000) NULL,
    sql_ADDRESS_PROVINCE NVARCHAR(3000) NULL,
    sql_ADDRESS_REGION NVARCHAR(3000) NULL,
    sql_ASSIGNED_BY_ID NVARCHAR(3000) NULL,
    sql_BIRTHDATE DATETIME NULL,
    sql_COMMENTS NTEXT NULL,
    sql_COMPANY_ID NVARCHAR(3000) NULL,
    sql_COMPANY_TITLE NVARCHAR(4000) NULL,
    sql_CONTACT_ID NVARCHAR(3000) NULL,
    sql_CREATED_BY_ID NVARCHAR(3000) NULL,
    sql_CURRENCY_ID NVARCHAR(3000) NULL,
    sql_DATE_CLOSED DATETIME NULL,
    sql_DATE_CREATE DATETIME NULL,
    sql_DATE_MODIFY DATETIME NULL,
    sql_LAST_NAME NVARCHAR(3000) NULL,
    sql_MODIFY_BY_ID NVARCHAR(3000) NULL,
    sql_NAME NVARCHAR(3000) NULL,
    sql_OPENED NVARCHAR(3000) NULL,
    sql_OPPORTUNITY NVARCHAR(3000) NULL,
    sql_ORIGIN_ID NVARCHAR(3000) NULL,
    sql_ORIGINATOR_ID NVARCHAR(3000) NULL,
    sql_POST NVARCHAR(3000) NULL,
    sql_SECOND_NAME NVARCHAR(3000) NULL,
    sql_SOURCE_DESCRIPTION NVARCHAR(3000) NULL,
    sql_SOURCE_ID NVARCHAR(3000) NULL,
    sql_STATUS_DESCRIPTION NVARCHAR(3000) NULL,
    sql_STATUS_ID NVARCHAR(3000) NULL,
    sql_TITLE NVARCHAR(4000) NULL
);

CREATE TABLE IF NOT EXISTS bitrix_lead_contacts (
    Id INTEGER PRIMARY KEY AUTOINCREMENT,
    sql_LEAD_ID INTEGER NULL,
    sql_CONTACT_ID NVARCHAR(2000) NULL,
    sql_VALUE_TYPE NVARCHAR(2000) NULL,
    sql_VALUE NVARCHAR(2000) NULL,
    sql_TYPE_ID NVARCHAR(2000) NULL
);

CREATE TABLE IF NOT EXISTS bitrix_lead_solution (
    Id INTEGER PRIMARY KEY AUTOINCREMENT,
    sql_LEAD_ID INTEGER NULL,
    sql_solution NVARCHAR(2000) NULL
);

CREATE TABLE IF NOT EXISTS bitrix_import_lead_error (
    Id INTEGER PRIMARY KEY AUTOINCREMENT,
    sql_ID NVARCHAR(2000) NULL,
    sql_error NVARCHAR(2000) NULL,
    sql_full_lead_info NTEXT NULL,
    sql_date_error DATETIME NULL
);

CREATE TABLE IF NOT EXISTS bitrix_lead_runtime (
    Id INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_get_by_id_dt DATETIME NULL,
    lead_list_dt DATETIME NULL
);

-- The upsert key: lets ON CONFLICT / lookups by sql_ID use an index, and stops duplicates.
CREATE UNIQUE INDEX IF NOT EXISTS ux_bitrix_leads_sql_ID
    ON bitrix_leads (sql_ID);
CREATE INDEX IF NOT EXISTS ix_bitrix_lead_contacts_lead_contact
    ON bitrix_lead_contacts (sql_LEAD_ID, sql_CONTACT_ID);
CREATE INDEX IF NOT EXISTS ix_bitrix_lead_solution_lead
    ON bitrix_lead_solution (sql_LEAD_ID);
CREATE INDEX IF NOT EXISTS ix_bitrix_import_lead_error_sql_ID
    ON bitrix_import_lead_error (sql_ID);

-- b24sync's own small values (watermarks, ...), not part of the Oktell contract.
CREATE TABLE IF NOT EXISTS b24sync_state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

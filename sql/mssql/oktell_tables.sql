-- The six Oktell tables, exactly as the contract (docs/oktell-schema.md) defines them.
-- Each CREATE is guarded by OBJECT_ID, so on an existing Oktell database nothing is changed:
-- existing tables, their data and their (possibly hand-made) extras are left alone.
-- Sent by `b24sync init-db` on every run before the numbered migrations; safe to run by hand.
IF OBJECT_ID(N'dbo.bitrix_oauth', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.bitrix_oauth (
        Id int IDENTITY(1,1) NOT NULL,
        access_token nvarchar(2000) NULL,
        expires_in nvarchar(2000) NULL,
        scope nvarchar(2000) NULL,
        user_id nvarchar(2000) NULL,
        refresh_token nvarchar(2000) NULL,
        domain nvarchar(2000) NULL,
        member_id nvarchar(2000) NULL,
        redirect_uri nvarchar(2000) NULL,
        client_id nvarchar(2000) NULL,
        client_secret nvarchar(2000) NULL,
        code nvarchar(2000) NULL,
        dateexec datetime NULL,
        CONSTRAINT PK_bitrix_oauth PRIMARY KEY CLUSTERED (Id)
    );
END;

IF OBJECT_ID(N'dbo.bitrix_leads', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.bitrix_leads (
        Id int IDENTITY(1,1) NOT NULL,
        sql_ID int NOT NULL,
        sql_ADDRESS nvarchar(3000) NULL,
        sql_ADDRESS_2 nvarchar(3000) NULL,
        sql_ADDRESS_CITY nvarchar(3000) NULL,
        sql_ADDRESS_COUNTRY nvarchar(3000) NULL,
        sql_ADDRESS_COUNTRY_CODE nvarchar(3000) NULL,
        sql_ADDRESS_POSTAL_CODE nvarchar(3000) NULL,
        sql_ADDRESS_PROVINCE nvarchar(3000) NULL,
        sql_ADDRESS_REGION nvarchar(3000) NULL,
        sql_ASSIGNED_BY_ID nvarchar(3000) NULL,
        sql_BIRTHDATE datetime NULL,
        sql_COMMENTS ntext NULL,
        sql_COMPANY_ID nvarchar(3000) NULL,
        sql_COMPANY_TITLE nvarchar(4000) NULL,
        sql_CONTACT_ID nvarchar(3000) NULL,
        sql_CREATED_BY_ID nvarchar(3000) NULL,
        sql_CURRENCY_ID nvarchar(3000) NULL,
        sql_DATE_CLOSED datetime NULL,
        sql_DATE_CREATE datetime NULL,
        sql_DATE_MODIFY datetime NULL,
        sql_LAST_NAME nvarchar(3000) NULL,
        sql_MODIFY_BY_ID nvarchar(3000) NULL,
        sql_NAME nvarchar(3000) NULL,
        sql_OPENED nvarchar(3000) NULL,
        sql_OPPORTUNITY nvarchar(3000) NULL,
        sql_ORIGIN_ID nvarchar(3000) NULL,
        sql_ORIGINATOR_ID nvarchar(3000) NULL,
        sql_POST nvarchar(3000) NULL,
        sql_SECOND_NAME nvarchar(3000) NULL,
        sql_SOURCE_DESCRIPTION nvarchar(3000) NULL,
        sql_SOURCE_ID nvarchar(3000) NULL,
        sql_STATUS_DESCRIPTION nvarchar(3000) NULL,
        sql_STATUS_ID nvarchar(3000) NULL,
        sql_TITLE nvarchar(4000) NULL,
        CONSTRAINT PK_bitrix_leads PRIMARY KEY CLUSTERED (Id)
    );
END;

IF OBJECT_ID(N'dbo.bitrix_lead_contacts', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.bitrix_lead_contacts (
        Id int IDENTITY(1,1) NOT NULL,
        sql_LEAD_ID int NULL,
        sql_CONTACT_ID nvarchar(2000) NULL,
        sql_VALUE_TYPE nvarchar(2000) NULL,
        sql_VALUE nvarchar(2000) NULL,
        sql_TYPE_ID nvarchar(2000) NULL,
        CONSTRAINT PK_bitrix_lead_contacts PRIMARY KEY CLUSTERED (Id)
    );
END;

IF OBJECT_ID(N'dbo.bitrix_lead_solution', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.bitrix_lead_solution (
        Id int IDENTITY(1,1) NOT NULL,
        sql_LEAD_ID int NULL,
        sql_solution nvarchar(2000) NULL,
        CONSTRAINT PK_bitrix_lead_solution PRIMARY KEY CLUSTERED (Id)
    );
END;

IF OBJECT_ID(N'dbo.bitrix_import_lead_error', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.bitrix_import_lead_error (
        Id int IDENTITY(1,1) NOT NULL,
        sql_ID nvarchar(2000) NULL,
        sql_error nvarchar(2000) NULL,
        sql_full_lead_info ntext NULL,
        sql_date_error datetime NULL,
        CONSTRAINT PK_bitrix_import_lead_error PRIMARY KEY CLUSTERED (Id)
    );
END;

IF OBJECT_ID(N'dbo.bitrix_lead_runtime', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.bitrix_lead_runtime (
        Id int IDENTITY(1,1) NOT NULL,
        lead_get_by_id_dt datetime NULL,
        lead_list_dt datetime NULL,
        CONSTRAINT PK_bitrix_lead_runtime PRIMARY KEY CLUSTERED (Id)
    );
END;

-- The project's record of applied numbered migrations (sql/mssql/migrations/NNNN_*.sql).
-- Catalog look-ups by index name are not portable across T-SQL engines, so whether an
-- index exists is answered by this table, the way sqlx/refinery/Flyway do it.
IF OBJECT_ID(N'dbo.b24sync_migrations', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.b24sync_migrations (
        version int NOT NULL,
        name nvarchar(200) NOT NULL,
        checksum nvarchar(64) NOT NULL,
        applied_at datetime2(0) NOT NULL,
        CONSTRAINT PK_b24sync_migrations PRIMARY KEY CLUSTERED (version)
    );
END;

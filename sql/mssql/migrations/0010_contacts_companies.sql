-- Migration 0010: CRM contacts and companies (docs/tables.md), b24sync's own tables in the
-- shape of the lead's: one row per record (sql_ID + a column per field, named sql_ + the
-- Bitrix24 field), one row per PHONE/EMAIL/WEB/IM value, an error table, the normalised
-- phones of the caller lookup, the content fingerprints. The six Oktell tables are not
-- touched. Each object is created only when missing.
-- e164, extension and digits_rev use the binary collation of the lead's phones
-- (0006_caller_lookup.sql); each error table gets the lead's index on sql_ID (0007), each
-- multi-field table the lead's on the owner, the value ID included (0002).
-- Self-guarding and self-recording, so a DBA may run it by hand (see 0001_state_table.sql).
IF NOT EXISTS (SELECT 1 FROM dbo.b24sync_migrations WHERE version = 10)
BEGIN
    IF OBJECT_ID(N'dbo.bitrix_contacts', N'U') IS NULL
    BEGIN
        CREATE TABLE dbo.bitrix_contacts (
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
            sql_CREATED_BY_ID nvarchar(3000) NULL,
            sql_DATE_CREATE datetime NULL,
            sql_DATE_MODIFY datetime NULL,
            sql_EXPORT nvarchar(3000) NULL,
            sql_FACE_ID nvarchar(3000) NULL,
            sql_HAS_EMAIL nvarchar(3000) NULL,
            sql_HAS_IMOL nvarchar(3000) NULL,
            sql_HAS_PHONE nvarchar(3000) NULL,
            sql_HONORIFIC nvarchar(3000) NULL,
            sql_LAST_ACTIVITY_BY nvarchar(3000) NULL,
            sql_LAST_ACTIVITY_TIME datetime NULL,
            sql_LAST_NAME nvarchar(3000) NULL,
            sql_LEAD_ID nvarchar(3000) NULL,
            sql_MODIFY_BY_ID nvarchar(3000) NULL,
            sql_NAME nvarchar(3000) NULL,
            sql_OPENED nvarchar(3000) NULL,
            sql_ORIGIN_ID nvarchar(3000) NULL,
            sql_ORIGIN_VERSION nvarchar(3000) NULL,
            sql_ORIGINATOR_ID nvarchar(3000) NULL,
            sql_POST nvarchar(3000) NULL,
            sql_SECOND_NAME nvarchar(3000) NULL,
            sql_SOURCE_DESCRIPTION nvarchar(3000) NULL,
            sql_SOURCE_ID nvarchar(3000) NULL,
            sql_TYPE_ID nvarchar(3000) NULL,
            sql_UTM_CAMPAIGN nvarchar(3000) NULL,
            sql_UTM_CONTENT nvarchar(3000) NULL,
            sql_UTM_MEDIUM nvarchar(3000) NULL,
            sql_UTM_SOURCE nvarchar(3000) NULL,
            sql_UTM_TERM nvarchar(3000) NULL,
            CONSTRAINT PK_bitrix_contacts PRIMARY KEY CLUSTERED (Id)
        );
        CREATE UNIQUE INDEX UX_bitrix_contacts_sql_ID ON dbo.bitrix_contacts (sql_ID);
    END;

    IF OBJECT_ID(N'dbo.bitrix_contact_multifields', N'U') IS NULL
    BEGIN
        CREATE TABLE dbo.bitrix_contact_multifields (
            Id int IDENTITY(1,1) NOT NULL,
            sql_CONTACT_ID int NULL,
            sql_VALUE_ID nvarchar(2000) NULL,
            sql_VALUE_TYPE nvarchar(2000) NULL,
            sql_VALUE nvarchar(2000) NULL,
            sql_TYPE_ID nvarchar(2000) NULL,
            CONSTRAINT PK_bitrix_contact_multifields PRIMARY KEY CLUSTERED (Id)
        );
        CREATE INDEX IX_bitrix_contact_multifields_owner ON dbo.bitrix_contact_multifields (sql_CONTACT_ID) INCLUDE (sql_VALUE_ID);
    END;

    IF OBJECT_ID(N'dbo.bitrix_import_contact_error', N'U') IS NULL
    BEGIN
        CREATE TABLE dbo.bitrix_import_contact_error (
            Id int IDENTITY(1,1) NOT NULL,
            sql_ID nvarchar(2000) NULL,
            sql_error nvarchar(2000) NULL,
            sql_full_contact_info ntext NULL,
            sql_date_error datetime NULL,
            CONSTRAINT PK_bitrix_import_contact_error PRIMARY KEY CLUSTERED (Id)
        );
        CREATE INDEX IX_bitrix_import_contact_error_sql_ID ON dbo.bitrix_import_contact_error (sql_ID);
    END;

    IF OBJECT_ID(N'dbo.b24sync_contact_phones', N'U') IS NULL
    BEGIN
        CREATE TABLE dbo.b24sync_contact_phones (
            Id int IDENTITY(1,1) NOT NULL,
            contact_id int NOT NULL,
            value_id nvarchar(2000) NULL,
            value nvarchar(2000) NOT NULL,
            e164 varchar(16) COLLATE Latin1_General_BIN2 NULL,
            extension varchar(10) COLLATE Latin1_General_BIN2 NULL,
            digits_rev varchar(15) COLLATE Latin1_General_BIN2 NULL,
            normalisable bit NOT NULL,
            reason nvarchar(400) NULL,
            CONSTRAINT PK_b24sync_contact_phones PRIMARY KEY CLUSTERED (Id)
        );
        CREATE INDEX IX_b24sync_contact_phones_owner ON dbo.b24sync_contact_phones (contact_id);
        CREATE INDEX IX_b24sync_contact_phones_e164 ON dbo.b24sync_contact_phones (e164) INCLUDE (contact_id);
        CREATE INDEX IX_b24sync_contact_phones_digits_rev ON dbo.b24sync_contact_phones (digits_rev) INCLUDE (contact_id);
    END;

    IF OBJECT_ID(N'dbo.b24sync_contact_fingerprints', N'U') IS NULL
    BEGIN
        CREATE TABLE dbo.b24sync_contact_fingerprints (
            contact_id int NOT NULL,
            fingerprint bigint NOT NULL,
            CONSTRAINT PK_b24sync_contact_fingerprints PRIMARY KEY CLUSTERED (contact_id)
        );
    END;

    IF OBJECT_ID(N'dbo.bitrix_companies', N'U') IS NULL
    BEGIN
        CREATE TABLE dbo.bitrix_companies (
            Id int IDENTITY(1,1) NOT NULL,
            sql_ID int NOT NULL,
            sql_ADDRESS nvarchar(3000) NULL,
            sql_ADDRESS_2 nvarchar(3000) NULL,
            sql_ADDRESS_CITY nvarchar(3000) NULL,
            sql_ADDRESS_COUNTRY nvarchar(3000) NULL,
            sql_ADDRESS_COUNTRY_CODE nvarchar(3000) NULL,
            sql_ADDRESS_LEGAL nvarchar(3000) NULL,
            sql_ADDRESS_POSTAL_CODE nvarchar(3000) NULL,
            sql_ADDRESS_PROVINCE nvarchar(3000) NULL,
            sql_ADDRESS_REGION nvarchar(3000) NULL,
            sql_ASSIGNED_BY_ID nvarchar(3000) NULL,
            sql_BANKING_DETAILS nvarchar(3000) NULL,
            sql_COMMENTS ntext NULL,
            sql_COMPANY_TYPE nvarchar(3000) NULL,
            sql_CREATED_BY_ID nvarchar(3000) NULL,
            sql_CURRENCY_ID nvarchar(3000) NULL,
            sql_DATE_CREATE datetime NULL,
            sql_DATE_MODIFY datetime NULL,
            sql_EMPLOYEES nvarchar(3000) NULL,
            sql_HAS_EMAIL nvarchar(3000) NULL,
            sql_HAS_IMOL nvarchar(3000) NULL,
            sql_HAS_PHONE nvarchar(3000) NULL,
            sql_INDUSTRY nvarchar(3000) NULL,
            sql_IS_MY_COMPANY nvarchar(3000) NULL,
            sql_LAST_ACTIVITY_BY nvarchar(3000) NULL,
            sql_LAST_ACTIVITY_TIME datetime NULL,
            sql_LAST_COMMUNICATION_TIME datetime NULL,
            sql_LEAD_ID nvarchar(3000) NULL,
            sql_MODIFY_BY_ID nvarchar(3000) NULL,
            sql_OPENED nvarchar(3000) NULL,
            sql_ORIGIN_ID nvarchar(3000) NULL,
            sql_ORIGIN_VERSION nvarchar(3000) NULL,
            sql_ORIGINATOR_ID nvarchar(3000) NULL,
            sql_REG_ADDRESS nvarchar(3000) NULL,
            sql_REG_ADDRESS_2 nvarchar(3000) NULL,
            sql_REG_ADDRESS_CITY nvarchar(3000) NULL,
            sql_REG_ADDRESS_COUNTRY nvarchar(3000) NULL,
            sql_REG_ADDRESS_COUNTRY_CODE nvarchar(3000) NULL,
            sql_REG_ADDRESS_POSTAL_CODE nvarchar(3000) NULL,
            sql_REG_ADDRESS_PROVINCE nvarchar(3000) NULL,
            sql_REG_ADDRESS_REGION nvarchar(3000) NULL,
            sql_REVENUE nvarchar(3000) NULL,
            sql_TITLE nvarchar(4000) NULL,
            sql_UTM_CAMPAIGN nvarchar(3000) NULL,
            sql_UTM_CONTENT nvarchar(3000) NULL,
            sql_UTM_MEDIUM nvarchar(3000) NULL,
            sql_UTM_SOURCE nvarchar(3000) NULL,
            sql_UTM_TERM nvarchar(3000) NULL,
            CONSTRAINT PK_bitrix_companies PRIMARY KEY CLUSTERED (Id)
        );
        CREATE UNIQUE INDEX UX_bitrix_companies_sql_ID ON dbo.bitrix_companies (sql_ID);
    END;

    IF OBJECT_ID(N'dbo.bitrix_company_multifields', N'U') IS NULL
    BEGIN
        CREATE TABLE dbo.bitrix_company_multifields (
            Id int IDENTITY(1,1) NOT NULL,
            sql_COMPANY_ID int NULL,
            sql_VALUE_ID nvarchar(2000) NULL,
            sql_VALUE_TYPE nvarchar(2000) NULL,
            sql_VALUE nvarchar(2000) NULL,
            sql_TYPE_ID nvarchar(2000) NULL,
            CONSTRAINT PK_bitrix_company_multifields PRIMARY KEY CLUSTERED (Id)
        );
        CREATE INDEX IX_bitrix_company_multifields_owner ON dbo.bitrix_company_multifields (sql_COMPANY_ID) INCLUDE (sql_VALUE_ID);
    END;

    IF OBJECT_ID(N'dbo.bitrix_import_company_error', N'U') IS NULL
    BEGIN
        CREATE TABLE dbo.bitrix_import_company_error (
            Id int IDENTITY(1,1) NOT NULL,
            sql_ID nvarchar(2000) NULL,
            sql_error nvarchar(2000) NULL,
            sql_full_company_info ntext NULL,
            sql_date_error datetime NULL,
            CONSTRAINT PK_bitrix_import_company_error PRIMARY KEY CLUSTERED (Id)
        );
        CREATE INDEX IX_bitrix_import_company_error_sql_ID ON dbo.bitrix_import_company_error (sql_ID);
    END;

    IF OBJECT_ID(N'dbo.b24sync_company_phones', N'U') IS NULL
    BEGIN
        CREATE TABLE dbo.b24sync_company_phones (
            Id int IDENTITY(1,1) NOT NULL,
            company_id int NOT NULL,
            value_id nvarchar(2000) NULL,
            value nvarchar(2000) NOT NULL,
            e164 varchar(16) COLLATE Latin1_General_BIN2 NULL,
            extension varchar(10) COLLATE Latin1_General_BIN2 NULL,
            digits_rev varchar(15) COLLATE Latin1_General_BIN2 NULL,
            normalisable bit NOT NULL,
            reason nvarchar(400) NULL,
            CONSTRAINT PK_b24sync_company_phones PRIMARY KEY CLUSTERED (Id)
        );
        CREATE INDEX IX_b24sync_company_phones_owner ON dbo.b24sync_company_phones (company_id);
        CREATE INDEX IX_b24sync_company_phones_e164 ON dbo.b24sync_company_phones (e164) INCLUDE (company_id);
        CREATE INDEX IX_b24sync_company_phones_digits_rev ON dbo.b24sync_company_phones (digits_rev) INCLUDE (company_id);
    END;

    IF OBJECT_ID(N'dbo.b24sync_company_fingerprints', N'U') IS NULL
    BEGIN
        CREATE TABLE dbo.b24sync_company_fingerprints (
            company_id int NOT NULL,
            fingerprint bigint NOT NULL,
            CONSTRAINT PK_b24sync_company_fingerprints PRIMARY KEY CLUSTERED (company_id)
        );
    END;
    INSERT INTO dbo.b24sync_migrations (version, name, checksum, applied_at)
    VALUES (10, N'contacts_companies', N'manual', SYSUTCDATETIME());
END;

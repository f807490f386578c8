-- The numbered migrations already applied (empty before init-db created the table).
IF OBJECT_ID(N'dbo.b24sync_migrations', N'U') IS NULL
    SELECT CAST(0 AS int) AS version, CAST(N'' AS nvarchar(64)) AS checksum WHERE 1 = 0;
ELSE
    SELECT version, checksum FROM dbo.b24sync_migrations ORDER BY version;

-- `b24sync init-db` (and the schema check at the start of every sync): make sure
-- bitrix_lead_runtime has its single row Id = 1, which the original scenarios keep and each
-- run stamps (stamp_runtime.sql, an UPDATE only). Id is an IDENTITY column, so creating that
-- row needs SET IDENTITY_INSERT, i.e. ALTER on the table: it is done here, where schema
-- rights are expected, and never after a run has written data. A login without ALTER gets
-- N'no_permission' back (nothing is tried), and the caller says what to run instead.
-- Answers one row: runtime_row = N'present', N'created' or N'no_permission'.
SET NOCOUNT ON;
SET XACT_ABORT ON;
DECLARE @state nvarchar(20) = N'present';
BEGIN TRANSACTION;
IF NOT EXISTS (SELECT 1 FROM dbo.bitrix_lead_runtime WITH (UPDLOCK, SERIALIZABLE) WHERE Id = 1)
BEGIN
    IF HAS_PERMS_BY_NAME(N'dbo.bitrix_lead_runtime', N'OBJECT', N'ALTER') = 1
    BEGIN
        SET IDENTITY_INSERT dbo.bitrix_lead_runtime ON;
        INSERT INTO dbo.bitrix_lead_runtime (Id, lead_get_by_id_dt, lead_list_dt) VALUES (1, NULL, NULL);
        SET IDENTITY_INSERT dbo.bitrix_lead_runtime OFF;
        SET @state = N'created';
    END
    ELSE
        SET @state = N'no_permission';
END;
COMMIT TRANSACTION;
SELECT @state AS runtime_row;

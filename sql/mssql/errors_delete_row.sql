-- A full sync's clean-up: delete the error row @P1 (its lead ID is not a number, so it can
-- never be read again, and the complete read no longer returned such a lead). The count is
-- selected, as in errors_clear.sql.
SET NOCOUNT ON;
DELETE FROM dbo.bitrix_import_lead_error WHERE Id = @P1;
SELECT @@ROWCOUNT AS errors_deleted;

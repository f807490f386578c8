-- Stamp bitrix_lead_runtime's single row (Id = 1, as the original scenarios keep it) with
-- the finish of a run: both stages run in every b24sync run, so both columns get @P1.
-- Id is an IDENTITY column, so creating row 1 needs IDENTITY_INSERT (the login needs ALTER
-- on the table for that; it is only needed the first time).
SET XACT_ABORT ON;
BEGIN TRANSACTION;
UPDATE dbo.bitrix_lead_runtime WITH (UPDLOCK, SERIALIZABLE)
SET lead_get_by_id_dt = @P1, lead_list_dt = @P1
WHERE Id = 1;
IF @@ROWCOUNT = 0
BEGIN
    SET IDENTITY_INSERT dbo.bitrix_lead_runtime ON;
    INSERT INTO dbo.bitrix_lead_runtime (Id, lead_get_by_id_dt, lead_list_dt) VALUES (1, @P1, @P1);
    SET IDENTITY_INSERT dbo.bitrix_lead_runtime OFF;
END;
COMMIT TRANSACTION;

-- Remove the leads staged in #stage_delete_ids (deleted in Bitrix24; see
-- stage_delete_create.sql) in ONE transaction, set-based, and return how many bitrix_leads
-- rows went as one row (leads_deleted).
--
-- A deleted lead's phone must stop identifying callers, so its contact values, its solution
-- and its error rows go with it, as in the embedded database (sql/sqlite/delete_*.sql), and
-- its fingerprint (migration 0009), which would describe rows no longer there.
-- bitrix_import_lead_error.sql_ID is text (the ID as received), so the staged int IDs are
-- converted for that match, the same way upsert_batch.sql finds a lead's error rows; error
-- rows without an ID are never touched. XACT_ABORT makes any failure roll all of it back.
SET NOCOUNT ON;
SET XACT_ABORT ON;

DECLARE @leads_deleted int = 0;

BEGIN TRANSACTION;

DELETE FROM dbo.bitrix_lead_contacts
WHERE sql_LEAD_ID IN (SELECT d.sql_ID FROM #stage_delete_ids AS d);

DELETE FROM dbo.bitrix_lead_solution
WHERE sql_LEAD_ID IN (SELECT d.sql_ID FROM #stage_delete_ids AS d);

DELETE FROM dbo.bitrix_import_lead_error
WHERE sql_ID IN (SELECT CONVERT(nvarchar(20), d.sql_ID) FROM #stage_delete_ids AS d);

DELETE FROM dbo.b24sync_lead_phones
WHERE lead_id IN (SELECT d.sql_ID FROM #stage_delete_ids AS d);

DELETE FROM dbo.b24sync_lead_fingerprints
WHERE lead_id IN (SELECT d.sql_ID FROM #stage_delete_ids AS d);

DELETE FROM dbo.bitrix_leads
WHERE sql_ID IN (SELECT d.sql_ID FROM #stage_delete_ids AS d);
SET @leads_deleted = @@ROWCOUNT;

COMMIT TRANSACTION;

-- The IDs are done with; free tempdb now rather than when the pooled connection closes.
DROP TABLE #stage_delete_ids;

SELECT @leads_deleted AS leads_deleted;

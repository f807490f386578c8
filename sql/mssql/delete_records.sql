-- Remove the records of one entity staged in #stage_delete_ids (deleted in Bitrix24; see
-- stage_delete_create.sql) in ONE transaction, set-based, and return how many rows of the
-- entity's table went as one row (leads_deleted, whatever the entity). A template: the
-- entity's names are filled in by src/load/mssql/entity_sql.rs.
--
-- A deleted record's phone must stop identifying callers, so its multi-field values, its
-- solution (the lead only) and its error rows go with it, as in the embedded database
-- (sql/sqlite/delete_*.sql), and its fingerprint, which would describe rows no longer there.
-- The error table's sql_ID is text (the ID as received), so the staged int IDs are
-- converted for that match, the same way upsert_batch.sql finds a record's error rows; error
-- rows without an ID are never touched. XACT_ABORT makes any failure roll all of it back.
SET NOCOUNT ON;
SET XACT_ABORT ON;

DECLARE @leads_deleted int = 0;

BEGIN TRANSACTION;

DELETE FROM dbo.{{multi_table}}
WHERE {{multi_owner}} IN (SELECT d.sql_ID FROM #stage_delete_ids AS d);
{{#solution}}
DELETE FROM dbo.{{solution_table}}
WHERE sql_LEAD_ID IN (SELECT d.sql_ID FROM #stage_delete_ids AS d);
{{/solution}}
DELETE FROM dbo.{{error_table}}
WHERE sql_ID IN (SELECT CONVERT(nvarchar(20), d.sql_ID) FROM #stage_delete_ids AS d);

DELETE FROM dbo.{{phones_table}}
WHERE {{phones_owner}} IN (SELECT d.sql_ID FROM #stage_delete_ids AS d);

DELETE FROM dbo.{{fingerprints_table}}
WHERE {{fingerprint_key}} IN (SELECT d.sql_ID FROM #stage_delete_ids AS d);

DELETE FROM dbo.{{table}}
WHERE sql_ID IN (SELECT d.sql_ID FROM #stage_delete_ids AS d);
SET @leads_deleted = @@ROWCOUNT;

COMMIT TRANSACTION;

-- The IDs are done with; free tempdb now rather than when the pooled connection closes.
DROP TABLE #stage_delete_ids;

SELECT @leads_deleted AS leads_deleted;

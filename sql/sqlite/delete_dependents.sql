-- A deleted lead's phone must stop identifying callers: its contact values, solution
-- and error rows go with it (and its fingerprint, which would describe rows no longer there).
DELETE FROM bitrix_lead_contacts WHERE sql_LEAD_ID IN (SELECT sql_ID FROM stage_delete_ids);
DELETE FROM bitrix_lead_solution WHERE sql_LEAD_ID IN (SELECT sql_ID FROM stage_delete_ids);
DELETE FROM bitrix_import_lead_error WHERE sql_ID IN (SELECT CAST(sql_ID AS TEXT) FROM stage_delete_ids);
DELETE FROM b24sync_lead_phones WHERE lead_id IN (SELECT sql_ID FROM stage_delete_ids);
DELETE FROM b24sync_lead_fingerprints WHERE lead_id IN (SELECT sql_ID FROM stage_delete_ids);

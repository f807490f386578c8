-- A deleted record's phone must stop identifying callers: its multi-field values, phones
-- and error rows go with it (and its fingerprint, which would describe rows no longer
-- there). The lead's solution rows go too (delete_solutions.sql).
DELETE FROM {{multi_table}} WHERE {{multi_owner}} IN (SELECT sql_ID FROM stage_delete_ids);
DELETE FROM {{error_table}} WHERE sql_ID IN (SELECT CAST(sql_ID AS TEXT) FROM stage_delete_ids);
DELETE FROM {{phones_table}} WHERE {{phones_owner}} IN (SELECT sql_ID FROM stage_delete_ids);
DELETE FROM {{fingerprints_table}} WHERE {{fingerprint_key}} IN (SELECT sql_ID FROM stage_delete_ids);

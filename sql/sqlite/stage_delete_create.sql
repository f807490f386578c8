-- The lead IDs a deletion check removes (leads deleted in Bitrix24).
CREATE TEMP TABLE IF NOT EXISTS stage_delete_ids (sql_ID INTEGER PRIMARY KEY);
DELETE FROM stage_delete_ids;

INSERT OR IGNORE INTO temp.stage_error_ids (sql_ID) VALUES (?1);

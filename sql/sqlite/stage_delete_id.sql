INSERT OR IGNORE INTO stage_delete_ids (sql_ID) VALUES (?1);

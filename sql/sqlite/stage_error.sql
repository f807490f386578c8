INSERT INTO temp.stage_errors (sql_ID, sql_error, record_json) VALUES (?1, ?2, ?3);

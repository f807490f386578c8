INSERT INTO temp.stage_errors (sql_ID, sql_error, sql_full_lead_info) VALUES (?1, ?2, ?3);

INSERT INTO temp.stage_contacts (sql_LEAD_ID, sql_CONTACT_ID, sql_VALUE_TYPE, sql_VALUE, sql_TYPE_ID)
VALUES (?1, ?2, ?3, ?4, ?5);

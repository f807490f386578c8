INSERT INTO temp.{{stage_multi}} (owner_id, value_id, sql_VALUE_TYPE, sql_VALUE, sql_TYPE_ID)
VALUES (?1, ?2, ?3, ?4, ?5);

-- A known problem keeps its row and date; only the lead's JSON is refreshed.
UPDATE bitrix_import_lead_error AS e SET sql_full_lead_info = s.sql_full_lead_info
FROM temp.stage_errors AS s
WHERE s.sql_ID IS NOT NULL
  AND e.sql_ID = s.sql_ID
  AND e.sql_error = s.sql_error
  AND e.sql_full_lead_info IS NOT s.sql_full_lead_info;

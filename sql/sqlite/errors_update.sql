-- A known problem keeps its row and date; only the lead's JSON is refreshed.
UPDATE {{error_table}} AS e SET {{error_json}} = s.record_json
FROM temp.stage_errors AS s
WHERE s.sql_ID IS NOT NULL
  AND e.sql_ID = s.sql_ID
  AND e.sql_error = s.sql_error
  AND e.{{error_json}} IS NOT s.record_json;

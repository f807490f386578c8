-- New problems, stamped ?1. A row without a lead ID cannot be matched to a lead, so it is
-- only skipped when an identical row (same error, same JSON) is already there: a re-run
-- then changes nothing.
INSERT INTO {{error_table}} (sql_ID, sql_error, {{error_json}}, sql_date_error)
SELECT s.sql_ID, s.sql_error, s.record_json, ?1
FROM temp.stage_errors AS s
WHERE NOT EXISTS (
    SELECT 1 FROM {{error_table}} AS e
    WHERE (s.sql_ID IS NOT NULL AND e.sql_ID = s.sql_ID AND e.sql_error = s.sql_error)
       OR (s.sql_ID IS NULL AND e.sql_ID IS NULL
           AND e.sql_error = s.sql_error
           AND e.{{error_json}} IS s.record_json))
ORDER BY s.rowid;

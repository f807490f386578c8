-- New problems, stamped ?1. A row without a lead ID cannot be matched to a lead, so it is
-- only skipped when an identical row (same error, same JSON) is already there: a re-run
-- then changes nothing.
INSERT INTO bitrix_import_lead_error (sql_ID, sql_error, sql_full_lead_info, sql_date_error)
SELECT s.sql_ID, s.sql_error, s.sql_full_lead_info, ?1
FROM temp.stage_errors AS s
WHERE NOT EXISTS (
    SELECT 1 FROM bitrix_import_lead_error AS e
    WHERE (s.sql_ID IS NOT NULL AND e.sql_ID = s.sql_ID AND e.sql_error = s.sql_error)
       OR (s.sql_ID IS NULL AND e.sql_ID IS NULL
           AND e.sql_error = s.sql_error
           AND e.sql_full_lead_info IS s.sql_full_lead_info))
ORDER BY s.rowid;

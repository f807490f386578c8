-- The error rows of the batch's leads are their current problems: drop a problem that is
-- gone (or a lead that now loads cleanly), and repeats of one (lead, problem), keeping the
-- lowest Id so the first-seen date survives. Rows without a lead ID are never dropped here.
DELETE FROM {{error_table}} AS e
WHERE e.sql_ID IN (SELECT sql_ID FROM temp.stage_error_ids)
  AND (
       NOT EXISTS (SELECT 1 FROM temp.stage_errors AS s
                   WHERE s.sql_ID = e.sql_ID AND s.sql_error IS e.sql_error)
    OR EXISTS (SELECT 1 FROM {{error_table}} AS d
               WHERE d.sql_ID = e.sql_ID AND d.sql_error IS e.sql_error AND d.Id < e.Id)
  );

-- Set staged sql_full_lead_info values (the lead's JSON) too long for tiberius's bulk path
-- (> 32,767 UTF-16 code units), which the bulk load staged as NULL. Same shape and reasons
-- as stage_long_comments.sql: four (seq, value) pairs per round trip, the last one repeated
-- to fill a short chunk.
UPDATE s SET s.sql_full_lead_info = v.value
FROM #stage_errors AS s
INNER JOIN (VALUES (@P1, @P2), (@P3, @P4), (@P5, @P6), (@P7, @P8)) AS v (seq, value)
        ON v.seq = s.seq;

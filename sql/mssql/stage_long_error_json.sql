-- Set staged {{error_json}} values (the record's JSON) too long for tiberius's bulk path
-- (> 32,767 UTF-16 code units), which the bulk load staged as NULL. Same shape and reasons
-- as stage_long_text.sql: four (seq, value) pairs per round trip, the last one repeated
-- to fill a short chunk. A template (src/load/mssql/entity_sql.rs).
UPDATE s SET s.{{error_json}} = v.value
FROM #stage_errors AS s
INNER JOIN (VALUES (@P1, @P2), (@P3, @P4), (@P5, @P6), (@P7, @P8)) AS v (seq, value)
        ON v.seq = s.seq;

-- Set a staged long-text value ({{long_column}}, e.g. the comments) too long for tiberius's
-- bulk path (> 32,767 UTF-16 code units; see the notes) after the bulk load staged it as
-- NULL. A template (src/load/mssql/entity_sql.rs), filled in once per long-text field of
-- each entity. Rare (pasted e-mails), so a fixed chunk of four (sql_ID, value) pairs per
-- round trip; a short chunk repeats its last pair, which sets the same value twice. The
-- staged value then reaches the ntext column through the batch's one set-based upsert, so
-- the record is written in the same transaction as everything else.
UPDATE s SET s.{{long_column}} = v.value
FROM {{stage}} AS s
INNER JOIN (VALUES (@P1, @P2), (@P3, @P4), (@P5, @P6), (@P7, @P8)) AS v (sql_ID, value)
        ON v.sql_ID = s.sql_ID;

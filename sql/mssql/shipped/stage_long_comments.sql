-- Set staged sql_COMMENTS values too long for tiberius's bulk path (> 32,767 UTF-16 code
-- units; see the notes) after the bulk load staged them as NULL. Rare (pasted e-mails), so a
-- fixed chunk of four (sql_ID, value) pairs per round trip; a short chunk repeats its last
-- pair, which sets the same value twice. The staged value then reaches the ntext column
-- through the batch's one set-based upsert, so the lead is written in the same transaction
-- as everything else.
UPDATE s SET s.sql_COMMENTS = v.value
FROM #stage_leads AS s
INNER JOIN (VALUES (@P1, @P2), (@P3, @P4), (@P5, @P6), (@P7, @P8)) AS v (sql_ID, value)
        ON v.sql_ID = s.sql_ID;

-- Per-connection staging for a batch's normalised phones (of any entity: the batch's) (see lookup_phones_*.sql), created
-- and emptied with the other staging tables of load_batch.
CREATE TEMP TABLE IF NOT EXISTS stage_phones (
    owner_id INTEGER NOT NULL,
    value_id NVARCHAR(2000) NULL,
    value NVARCHAR(2000) NOT NULL,
    e164 VARCHAR(16) NULL,
    extension VARCHAR(10) NULL,
    digits_rev VARCHAR(15) NULL,
    normalisable INTEGER NOT NULL,
    reason NVARCHAR(400) NULL
);
CREATE INDEX IF NOT EXISTS temp.ix_stage_phones ON stage_phones (owner_id);
DELETE FROM temp.stage_phones;

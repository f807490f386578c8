-- Per-connection staging tables for load_batch (the SQLite stand-in for a bulk load): the
-- records and their multi-field values one pair per entity, the error rows shared (a batch
-- holds one entity's records, and every batch clears them).
-- Same declared types as the real tables, so values get the same affinity and
-- compare equal with IS when nothing changed.
CREATE TEMP TABLE IF NOT EXISTS {{stage}} (
    sql_ID INTEGER PRIMARY KEY,
{{stage_columns}},
    -- Not a column of the record's table: the lead's bitrix_lead_solution value.
    sql_solution NVARCHAR(2000) NULL
);

CREATE TEMP TABLE IF NOT EXISTS {{stage_multi}} (
    owner_id INTEGER NOT NULL,
    value_id NVARCHAR(2000) NULL,
    sql_VALUE_TYPE NVARCHAR(2000) NULL,
    sql_VALUE NVARCHAR(2000) NULL,
    sql_TYPE_ID NVARCHAR(2000) NULL
);
CREATE INDEX IF NOT EXISTS temp.ix_{{stage_multi}} ON {{stage_multi}} (owner_id, value_id);

-- The record IDs (as text) whose error rows this batch replaces.
CREATE TEMP TABLE IF NOT EXISTS stage_error_ids (
    sql_ID NVARCHAR(2000) PRIMARY KEY
);

CREATE TEMP TABLE IF NOT EXISTS stage_errors (
    sql_ID NVARCHAR(2000) NULL,
    sql_error NVARCHAR(2000) NOT NULL,
    record_json NTEXT NULL
);
CREATE INDEX IF NOT EXISTS temp.ix_stage_errors ON stage_errors (sql_ID, sql_error);

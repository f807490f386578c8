//! Every SQL statement the SQLite sink runs, from `sql/sqlite/*.sql`. Values are always
//! bound as parameters. The statements that write an entity's records are templates, filled
//! in with the entity's names by `entity_sql.rs`.

/// Bootstrap: the table that records applied migrations.
pub const MIGRATIONS_TABLE: &str = include_str!("../../../sql/sqlite/migrations_table.sql");
/// Migration 1: the six Oktell tables, the loader's indexes, `b24sync_state`.
pub const MIGRATION_0001: &str = include_str!("../../../sql/sqlite/0001_contract_tables.sql");
/// Migration 2: the run history, `b24sync_runs`.
pub const MIGRATION_0002: &str = include_str!("../../../sql/sqlite/0002_run_history.sql");
pub const MIGRATIONS_APPLIED: &str = include_str!("../../../sql/sqlite/migrations_applied.sql");
pub const MIGRATION_RECORD: &str = include_str!("../../../sql/sqlite/migration_record.sql");
pub const SCHEMA_OBJECTS: &str = include_str!("../../../sql/sqlite/schema_objects.sql");
pub const TABLE_COLUMNS: &str = include_str!("../../../sql/sqlite/table_columns.sql");
pub const DUPLICATE_LEADS_SUMMARY: &str =
    include_str!("../../../sql/sqlite/duplicate_leads_summary.sql");
pub const DUPLICATE_LEADS_EXAMPLES: &str =
    include_str!("../../../sql/sqlite/duplicate_leads_examples.sql");
/// The documented fix for duplicate `sql_ID` rows (keeps the highest `Id` of each).
pub const FIX_DUPLICATE_LEADS: &str = include_str!("../../../sql/sqlite/fix_duplicate_leads.sql");

pub const STAGE_ERROR_ID: &str = include_str!("../../../sql/sqlite/stage_error_id.sql");
pub const STAGE_ERROR: &str = include_str!("../../../sql/sqlite/stage_error.sql");

pub const SOLUTION_DELETE: &str = include_str!("../../../sql/sqlite/solution_delete.sql");
pub const SOLUTION_UPDATE: &str = include_str!("../../../sql/sqlite/solution_update.sql");
pub const DELETE_SOLUTIONS: &str = include_str!("../../../sql/sqlite/delete_solutions.sql");
pub const SOLUTION_INSERT: &str = include_str!("../../../sql/sqlite/solution_insert.sql");

pub const RUNTIME_STAMP: &str = include_str!("../../../sql/sqlite/runtime_stamp.sql");
pub const STATE_READ: &str = include_str!("../../../sql/sqlite/state_read.sql");
pub const STATE_WRITE: &str = include_str!("../../../sql/sqlite/state_write.sql");

// Deletion check and error review.
pub const STAGE_DELETE_CREATE: &str = include_str!("../../../sql/sqlite/stage_delete_create.sql");
pub const STAGE_DELETE_ID: &str = include_str!("../../../sql/sqlite/stage_delete_id.sql");
pub const ERROR_ROWS: &str = include_str!("../../../sql/sqlite/error_rows.sql");
pub const ERRORS_CLEAR: &str = include_str!("../../../sql/sqlite/errors_clear.sql");
pub const ERRORS_DELETE_ROW: &str = include_str!("../../../sql/sqlite/errors_delete_row.sql");

// Run history and `b24sync doctor`.
pub const RUNS_INSERT: &str = include_str!("../../../sql/sqlite/runs_insert.sql");
pub const RUNS_FINISH: &str = include_str!("../../../sql/sqlite/runs_finish.sql");
pub const RUNS_RECENT: &str = include_str!("../../../sql/sqlite/runs_recent.sql");
pub const TABLE_COLUMNS_TYPED: &str = include_str!("../../../sql/sqlite/table_columns_typed.sql");
// The caller lookup (migration 3; see `lookup.rs`).
pub const MIGRATION_0003: &str = include_str!("../../../sql/sqlite/0003_caller_lookup.sql");
pub const LOOKUP_STAGE_CREATE: &str = include_str!("../../../sql/sqlite/lookup_stage_create.sql");
pub const LOOKUP_STAGE_PHONE: &str = include_str!("../../../sql/sqlite/lookup_stage_phone.sql");
pub const LOOKUP_CALLER: &str = include_str!("../../../sql/sqlite/lookup_caller.sql");
pub const LOOKUP_OPERATOR_IDS: &str = include_str!("../../../sql/sqlite/lookup_operator_ids.sql");
pub const LOOKUP_OPERATOR_UPSERT: &str =
    include_str!("../../../sql/sqlite/lookup_operator_upsert.sql");
pub const LOOKUP_OPERATOR_INSERT_ID: &str =
    include_str!("../../../sql/sqlite/lookup_operator_insert_id.sql");
// The leads' content fingerprints (migration 4; see `src/prepare/fingerprint.rs`).
pub const MIGRATION_0004: &str = include_str!("../../../sql/sqlite/0004_lead_fingerprints.sql");
// CRM contacts and companies (migration 5; the tables of `schema::CONTACT` and `COMPANY`).
pub const MIGRATION_0005: &str = include_str!("../../../sql/sqlite/0005_contacts_companies.sql");
// The caller lookup over leads, contacts and companies (migration 7: the view again).
pub const MIGRATION_0007: &str =
    include_str!("../../../sql/sqlite/0007_caller_lookup_entities.sql");
// The event queue of `b24sync serve` (migration 6; see `queue.rs`).
pub const MIGRATION_0006: &str = include_str!("../../../sql/sqlite/0006_event_queue.sql");
pub const QUEUE_ENQUEUE: &str = include_str!("../../../sql/sqlite/queue_enqueue.sql");
pub const QUEUE_PEEK: &str = include_str!("../../../sql/sqlite/queue_peek.sql");
pub const QUEUE_REMOVE: &str = include_str!("../../../sql/sqlite/queue_remove.sql");
pub const QUEUE_FAIL: &str = include_str!("../../../sql/sqlite/queue_fail.sql");
pub const QUEUE_DEPTH: &str = include_str!("../../../sql/sqlite/queue_depth.sql");

//! Every T-SQL text the SQL Server sink sends, from `sql/mssql/` (so tests can parse all
//! of it), and the numbered migrations `init-db` applies.
//!
//! Two statements are not ours: tiberius's bulk insert sends `SELECT TOP 0 * FROM #stage_x`
//! and `INSERT BULK #stage_x (...)` built from the staging table names below, and bb8-tiberius
//! checks a pooled connection with `SELECT 1` before handing it out.

/// The six Oktell tables and `b24sync_migrations`, each guarded by `OBJECT_ID`.
pub const OKTELL_TABLES: &str = include_str!("../../../sql/mssql/oktell_tables.sql");
/// Which of the tables above exist (for `SchemaReport::created`).
pub const TABLES_PRESENT: &str = include_str!("../../../sql/mssql/tables_present.sql");
pub const MIGRATIONS_APPLIED: &str = include_str!("../../../sql/mssql/migrations_applied.sql");
pub const MIGRATION_SET_CHECKSUM: &str =
    include_str!("../../../sql/mssql/migration_set_checksum.sql");
pub const CHECK_DUPLICATE_LEADS: &str =
    include_str!("../../../sql/mssql/check_duplicate_leads.sql");
/// Shipped for a DBA to run by hand; exposed so a CLI can print it.
pub const FIX_DUPLICATE_LEADS: &str = include_str!("../../../sql/mssql/fix_duplicate_leads.sql");
pub const TX_BEGIN: &str = include_str!("../../../sql/mssql/tx_begin.sql");
pub const TX_COMMIT: &str = include_str!("../../../sql/mssql/tx_commit.sql");
pub const ROLLBACK: &str = include_str!("../../../sql/mssql/rollback.sql");

// The statements of a batch, the deletion check and the fingerprints are templates, filled
// in per entity by `entity_sql.rs` (stage_create.sql, upsert_batch.sql, fingerprints_sync.sql,
// stage_long_text.sql, stage_long_error_json.sql, record_ids.sql, record_fingerprints.sql,
// delete_records.sql, and lookup_phones_sync.sql below).
/// How many (key, value) pairs one long-value statement carries.
pub const LONG_CHUNK: usize = 4;
/// A dry-run preview: the batch's statements inside a transaction that is rolled back.
pub const PREVIEW_BEGIN: &str = include_str!("../../../sql/mssql/preview_begin.sql");
pub const PREVIEW_END: &str = include_str!("../../../sql/mssql/preview_end.sql");
/// The event queue of `b24sync serve` (migration 0011; see `queue.rs`).
pub const QUEUE_ENQUEUE: &str = include_str!("../../../sql/mssql/queue_enqueue.sql");
pub const QUEUE_PEEK: &str = include_str!("../../../sql/mssql/queue_peek.sql");
pub const QUEUE_REMOVE: &str = include_str!("../../../sql/mssql/queue_remove.sql");
pub const QUEUE_FAIL: &str = include_str!("../../../sql/mssql/queue_fail.sql");
pub const QUEUE_DEPTH: &str = include_str!("../../../sql/mssql/queue_depth.sql");

pub const LOCK_ACQUIRE: &str = include_str!("../../../sql/mssql/lock_acquire.sql");
/// Sent on the lock's session once it is granted (@P1 the run's token, @P2 wait in ms).
pub const LOCK_CONFIRM: &str = include_str!("../../../sql/mssql/lock_confirm.sql");
/// Sent inside every write transaction of a run holding the lock (@P1 the run's token).
pub const LOCK_GUARD: &str = include_str!("../../../sql/mssql/lock_guard.sql");
/// @P1 the run's token.
pub const LOCK_RELEASE: &str = include_str!("../../../sql/mssql/lock_release.sql");
/// An UPDATE of row Id = 1 (@P1 the finish time); answers `runtime_rows`.
pub const STAMP_RUNTIME: &str = include_str!("../../../sql/mssql/stamp_runtime.sql");
/// init-db: create row Id = 1 of bitrix_lead_runtime if missing and allowed; answers
/// `runtime_row` = `present` / `created` / `no_permission`.
pub const RUNTIME_ROW: &str = include_str!("../../../sql/mssql/runtime_row.sql");

/// `b24sync_state` (migration 1): read one value (@P1 name); set one (@P1 name, @P2 value).
pub const STATE_READ: &str = include_str!("../../../sql/mssql/state_read.sql");
pub const STATE_WRITE: &str = include_str!("../../../sql/mssql/state_write.sql");
/// The deletion check: for the records gone from Bitrix24, stage their IDs (this, bulk-loaded
/// into [`STAGE_DELETE_IDS`]) and delete them with their dependent rows in one transaction
/// (`delete_records.sql`, per entity).
pub const STAGE_DELETE_CREATE: &str = include_str!("../../../sql/mssql/stage_delete_create.sql");
/// The error review: list `bitrix_import_lead_error`; delete its rows dated before @P1.
pub const ERROR_ROWS: &str = include_str!("../../../sql/mssql/error_rows.sql");
pub const ERRORS_CLEAR: &str = include_str!("../../../sql/mssql/errors_clear.sql");
/// A full sync's clean-up: delete the error row @P1.
pub const ERRORS_DELETE_ROW: &str = include_str!("../../../sql/mssql/errors_delete_row.sql");

/// The run history (migration 5, `dbo.b24sync_runs`): start a row (@P1 started_at, @P2 mode;
/// returns its Id), complete it, list the newest (@P1 how many).
pub const RUNS_INSERT: &str = include_str!("../../../sql/mssql/runs_insert.sql");
pub const RUNS_FINISH: &str = include_str!("../../../sql/mssql/runs_finish.sql");
pub const RUNS_RECENT: &str = include_str!("../../../sql/mssql/runs_recent.sql");
/// `b24sync doctor`: the contract tables' columns; what the login may do.
pub const CONTRACT_COLUMNS: &str = include_str!("../../../sql/mssql/contract_columns.sql");
pub const PERMISSIONS: &str = include_str!("../../../sql/mssql/permissions.sql");
/// The OAuth token store: an app's refresh lock (@P1 resource, @P2 wait in ms) and its
/// release (@P1), its `bitrix_oauth` row (@P1 client_id), and the write of row and state.
pub const OAUTH_LOCK_ACQUIRE: &str = include_str!("../../../sql/mssql/oauth_lock_acquire.sql");
pub const OAUTH_LOCK_RELEASE: &str = include_str!("../../../sql/mssql/oauth_lock_release.sql");
pub const OAUTH_READ: &str = include_str!("../../../sql/mssql/oauth_read.sql");
pub const OAUTH_WRITE: &str = include_str!("../../../sql/mssql/oauth_write.sql");
/// The caller lookup (migration 0006): the batch's normalised phones are staged
/// ([`LOOKUP_STAGE_CREATE`], bulk-loaded into [`STAGE_PHONES`]) and synced inside the batch's
/// transaction ([`LOOKUP_PHONES_SYNC`], a template filled in per entity by `entity_sql.rs`); operators are staged
/// ([`LOOKUP_OPERATORS_STAGE_CREATE`], [`STAGE_OPERATORS`]) and upserted; the lookup itself
/// (@P1 E.164 or '', @P2 tail or '', @P3 rows) calls the migration's function.
pub const LOOKUP_STAGE_CREATE: &str = include_str!("../../../sql/mssql/lookup_stage_create.sql");
pub const LOOKUP_PHONES_SYNC: &str = include_str!("../../../sql/mssql/lookup_phones_sync.sql");
pub const LOOKUP_CALLER: &str = include_str!("../../../sql/mssql/lookup_caller.sql");
pub const LOOKUP_OPERATOR_IDS: &str = include_str!("../../../sql/mssql/lookup_operator_ids.sql");
pub const LOOKUP_OPERATORS_STAGE_CREATE: &str =
    include_str!("../../../sql/mssql/lookup_operators_stage_create.sql");
pub const LOOKUP_OPERATORS_UPSERT: &str =
    include_str!("../../../sql/mssql/lookup_operators_upsert.sql");
pub const STAGE_PHONES: &str = "#stage_phones";
pub const STAGE_OPERATORS: &str = "#stage_operators";

/// Staging tables `stage_create.sql` creates for every entity besides the entity's own two
/// (`entity_sql::EntitySql::stage`, `stage_multi`); tiberius bulk-loads into these names.
pub const STAGE_ERRORS: &str = "#stage_errors";
pub const STAGE_FINGERPRINTS: &str = "#stage_fingerprints";
/// Created by [`STAGE_DELETE_CREATE`].
pub const STAGE_DELETE_IDS: &str = "#stage_delete_ids";

/// The tables [`OKTELL_TABLES`] creates, in [`TABLES_PRESENT`]'s terms.
pub const SCHEMA_TABLES: [&str; 7] = [
    "bitrix_oauth",
    "bitrix_leads",
    "bitrix_lead_contacts",
    "bitrix_lead_solution",
    "bitrix_import_lead_error",
    "bitrix_lead_runtime",
    "b24sync_migrations",
];

/// A numbered, once-only schema change. Each file guards itself with its version in
/// `b24sync_migrations` and records itself (checksum `N'manual'`), so a DBA can run the files
/// by hand; b24sync then stores the file's checksum.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
    /// Check for duplicate `sql_ID` rows first (the unique index would fail on them).
    pub needs_unique_leads: bool,
}

pub const MIGRATIONS: [Migration; 12] = [
    Migration {
        version: 1,
        name: "state_table",
        sql: include_str!("../../../sql/mssql/migrations/0001_state_table.sql"),
        needs_unique_leads: false,
    },
    Migration {
        version: 2,
        name: "contacts_lead_index",
        sql: include_str!("../../../sql/mssql/migrations/0002_contacts_lead_index.sql"),
        needs_unique_leads: false,
    },
    Migration {
        version: 3,
        name: "solution_lead_index",
        sql: include_str!("../../../sql/mssql/migrations/0003_solution_lead_index.sql"),
        needs_unique_leads: false,
    },
    Migration {
        version: 4,
        name: "leads_unique_sql_id",
        sql: include_str!("../../../sql/mssql/migrations/0004_leads_unique_sql_id.sql"),
        needs_unique_leads: true,
    },
    Migration {
        version: 5,
        name: "run_history",
        sql: include_str!("../../../sql/mssql/migrations/0005_run_history.sql"),
        needs_unique_leads: false,
    },
    Migration {
        version: 6,
        name: "caller_lookup",
        sql: include_str!("../../../sql/mssql/migrations/0006_caller_lookup.sql"),
        needs_unique_leads: false,
    },
    Migration {
        version: 7,
        name: "error_lead_index",
        sql: include_str!("../../../sql/mssql/migrations/0007_error_lead_index.sql"),
        needs_unique_leads: false,
    },
    Migration {
        version: 8,
        name: "lookup_collation",
        sql: include_str!("../../../sql/mssql/migrations/0008_lookup_collation.sql"),
        needs_unique_leads: false,
    },
    Migration {
        version: 9,
        name: "lead_fingerprints",
        sql: include_str!("../../../sql/mssql/migrations/0009_lead_fingerprints.sql"),
        needs_unique_leads: false,
    },
    Migration {
        version: 10,
        name: "contacts_companies",
        sql: include_str!("../../../sql/mssql/migrations/0010_contacts_companies.sql"),
        needs_unique_leads: false,
    },
    Migration {
        version: 11,
        name: "event_queue",
        sql: include_str!("../../../sql/mssql/migrations/0011_event_queue.sql"),
        needs_unique_leads: false,
    },
    Migration {
        version: 12,
        name: "caller_lookup_entities",
        sql: include_str!("../../../sql/mssql/migrations/0012_caller_lookup_entities.sql"),
        needs_unique_leads: false,
    },
];

/// A script's batches: split at `GO` lines, sqlcmd's separator (CREATE FUNCTION and CREATE
/// VIEW must each be alone in their batch). A script without GO is one batch.
pub fn batches(text: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for line in text.lines() {
        if line.trim().eq_ignore_ascii_case("go") {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    out.retain(|b| !b.trim().is_empty());
    out
}

/// What a script creates, for the debug log: `table dbo.x`, `index IX_y`, `view dbo.v`,
/// `function dbo.f`, from its `CREATE` lines (the first word after the kind is the name).
pub fn objects(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (kind, name) = match words.as_slice() {
            ["CREATE", "UNIQUE", "INDEX", name, ..] | ["CREATE", "INDEX", name, ..] => {
                ("index", name)
            }
            ["CREATE", "TABLE", name, ..] => ("table", name),
            ["CREATE", "VIEW", name, ..] => ("view", name),
            ["CREATE", "FUNCTION", name, ..] => ("function", name),
            _ => continue,
        };
        out.push(format!("{kind} {}", name.trim_end_matches('(')));
    }
    out
}

/// Checksum recorded for a migration: FNV-1a (64-bit) of the text with line endings
/// normalised, so a Windows checkout (CRLF) does not look like an edit. It detects edits of
/// an applied file; it is not meant to resist tampering.
pub fn checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.replace("\r\n", "\n").bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("fnv1a64:{hash:016x}")
}

/// Every SQL text above with its file name, for the parse tests.
#[cfg(test)]
pub fn all_included() -> Vec<(&'static str, &'static str)> {
    let mut all = vec![
        ("oktell_tables.sql", OKTELL_TABLES),
        ("tables_present.sql", TABLES_PRESENT),
        ("migrations_applied.sql", MIGRATIONS_APPLIED),
        ("migration_set_checksum.sql", MIGRATION_SET_CHECKSUM),
        ("check_duplicate_leads.sql", CHECK_DUPLICATE_LEADS),
        ("fix_duplicate_leads.sql", FIX_DUPLICATE_LEADS),
        ("tx_begin.sql", TX_BEGIN),
        ("tx_commit.sql", TX_COMMIT),
        ("rollback.sql", ROLLBACK),
        ("queue_enqueue.sql", QUEUE_ENQUEUE),
        ("queue_peek.sql", QUEUE_PEEK),
        ("queue_remove.sql", QUEUE_REMOVE),
        ("queue_fail.sql", QUEUE_FAIL),
        ("queue_depth.sql", QUEUE_DEPTH),
        ("preview_begin.sql", PREVIEW_BEGIN),
        ("preview_end.sql", PREVIEW_END),
        ("lock_acquire.sql", LOCK_ACQUIRE),
        ("lock_confirm.sql", LOCK_CONFIRM),
        ("lock_guard.sql", LOCK_GUARD),
        ("lock_release.sql", LOCK_RELEASE),
        ("stamp_runtime.sql", STAMP_RUNTIME),
        ("runtime_row.sql", RUNTIME_ROW),
        ("state_read.sql", STATE_READ),
        ("state_write.sql", STATE_WRITE),
        ("stage_delete_create.sql", STAGE_DELETE_CREATE),
        ("error_rows.sql", ERROR_ROWS),
        ("errors_clear.sql", ERRORS_CLEAR),
        ("errors_delete_row.sql", ERRORS_DELETE_ROW),
        ("runs_insert.sql", RUNS_INSERT),
        ("runs_finish.sql", RUNS_FINISH),
        ("runs_recent.sql", RUNS_RECENT),
        ("contract_columns.sql", CONTRACT_COLUMNS),
        ("permissions.sql", PERMISSIONS),
        ("oauth_lock_acquire.sql", OAUTH_LOCK_ACQUIRE),
        ("oauth_lock_release.sql", OAUTH_LOCK_RELEASE),
        ("oauth_read.sql", OAUTH_READ),
        ("oauth_write.sql", OAUTH_WRITE),
        ("lookup_caller.sql", LOOKUP_CALLER),
        ("lookup_operator_ids.sql", LOOKUP_OPERATOR_IDS),
        (
            "lookup_operators_stage_create.sql",
            LOOKUP_OPERATORS_STAGE_CREATE,
        ),
        ("lookup_operators_upsert.sql", LOOKUP_OPERATORS_UPSERT),
    ];
    all.extend(MIGRATIONS.iter().map(|m| (m.name, m.sql)));
    all.extend(super::entity_sql::expansions());
    all
}

//! The tables, column by column: the six Oktell tables (docs/oktell-schema.md) and
//! b24sync's own. The DDL under `sql/mssql/` and `sql/sqlite/` is tested against this.

use std::borrow::Cow;
use std::sync::LazyLock;

use super::entity::{Entity, ENTITIES, LEAD};
use super::fields::SMALL_TEXT_CHARS;
use super::{Column, Dialect, Kind, Owner, SqliteDecl, Table};

/// The most of a lead ID b24sync writes into `bitrix_import_lead_error.sql_ID`: 800 UTF-16
/// units (1,600 bytes), under the 1,700-byte key limit of SQL Server's index on it
/// (migration 0007). A real ID is a short number; only a malformed answer gives longer
/// text, and its full text stays in the row's lead JSON.
pub const ERROR_ID_CHARS: usize = 800;
// Two bytes per unit, plus the 4-byte clustered key a non-unique index row carries.
const _: () = assert!(ERROR_ID_CHARS * 2 + 4 <= 1700);

/// b24sync's table of the leads' content fingerprints (never one of the Oktell tables).
pub const FINGERPRINTS_TABLE: &str = LEAD.fingerprints_table;

/// b24sync's durable event queue (`b24sync serve`): one row per (entity type, entity ID)
/// waiting to be read again from Bitrix24 (never one of the Oktell tables).
pub const EVENT_QUEUE_TABLE: &str = "b24sync_event_queue";
/// `b24sync_event_queue.entity_type` ("lead", later "contact", "company"), `.event_action`
/// ("change", "delete") and `.last_error`.
pub const QUEUE_ENTITY_CHARS: usize = 20;
pub const QUEUE_ACTION_CHARS: usize = 10;
pub const QUEUE_ERROR_CHARS: usize = 2000;

/// `b24sync_runs.mode`, `.status` and `.message`.
pub const RUN_MODE_CHARS: usize = 40;
pub const RUN_STATUS_CHARS: usize = 20;
pub const RUN_MESSAGE_CHARS: usize = 2000;
/// `b24sync_lead_phones.reason`.
pub const PHONE_REASON_CHARS: usize = 400;
/// `b24sync_operators.user_id`, `.name`/`.last_name`, `.email`, `.phone_inner`.
pub const OPERATOR_USER_ID_CHARS: usize = 50;
pub const OPERATOR_NAME_CHARS: usize = 200;
pub const OPERATOR_EMAIL_CHARS: usize = 200;
pub const OPERATOR_EXTENSION_CHARS: usize = 50;

fn col(name: impl Into<Cow<'static, str>>, kind: Kind, nullable: bool) -> Column {
    Column {
        name: name.into(),
        kind,
        nullable,
        sqlite: None,
        only: None,
    }
}
fn null(name: &'static str, kind: Kind) -> Column {
    col(name, kind, true)
}
fn not_null(name: &'static str, kind: Kind) -> Column {
    col(name, kind, false)
}
fn key() -> Column {
    not_null("Id", Kind::Key)
}
fn text(max_chars: usize) -> Kind {
    Kind::Text { max_chars }
}
fn ascii(max_chars: usize) -> Kind {
    Kind::Ascii { max_chars }
}
/// A column the embedded database declares in its own looser way.
fn on_sqlite(mut c: Column, decl: &'static str, nullable: bool) -> Column {
    c.sqlite = Some(SqliteDecl { decl, nullable });
    c
}
fn small_texts<'a>(names: &'a [&'static str]) -> impl Iterator<Item = Column> + 'a {
    names.iter().map(|n| null(n, text(SMALL_TEXT_CHARS)))
}
fn describe(
    name: &'static str,
    owner: Owner,
    columns: Vec<Column>,
    key: &'static [&'static str],
) -> Table {
    Table {
        name,
        owner,
        columns,
        key,
    }
}

fn oktell() -> Vec<Table> {
    let mut oauth = vec![key()];
    oauth.extend(small_texts(&[
        "access_token",
        "expires_in",
        "scope",
        "user_id",
        "refresh_token",
        "domain",
        "member_id",
        "redirect_uri",
        "client_id",
        "client_secret",
        "code",
    ]));
    oauth.push(null("dateexec", Kind::DateTime));

    let mut solution = vec![key(), null("sql_LEAD_ID", Kind::Int)];
    solution.extend(small_texts(&["sql_solution"]));
    let runtime = vec![
        key(),
        null("lead_get_by_id_dt", Kind::DateTime),
        null("lead_list_dt", Kind::DateTime),
    ];
    let o = Owner::Oktell;
    vec![
        describe("bitrix_oauth", o, oauth, &["Id"]),
        describe(LEAD.table, o, records(&LEAD), &["Id"]),
        describe(LEAD.multi_table, o, multi_values(&LEAD), &["Id"]),
        describe("bitrix_lead_solution", o, solution, &["Id"]),
        describe(LEAD.error_table, o, errors(&LEAD), &["Id"]),
        describe("bitrix_lead_runtime", o, runtime, &["Id"]),
    ]
}

fn own() -> Vec<Table> {
    // SQLite keeps b24sync's keys and timestamps as TEXT; a PRIMARY KEY other than the rowid
    // alias is nullable there unless declared NOT NULL.
    let stamp_text = |name: &'static str, nullable: bool| {
        on_sqlite(col(name, Kind::Stamp, nullable), "TEXT", nullable)
    };
    let migrations = vec![
        on_sqlite(not_null("version", Kind::Int), "INTEGER", true),
        on_sqlite(not_null("name", text(200)), "TEXT", true),
        Column {
            only: Some(Dialect::Mssql),
            ..not_null("checksum", text(64))
        },
        on_sqlite(not_null("applied_at", Kind::Stamp), "TEXT", true),
    ];
    let state = vec![
        on_sqlite(not_null("name", text(200)), "TEXT", true),
        on_sqlite(null("value", Kind::MaxText), "TEXT", false),
        stamp_text("updated_at", false),
    ];
    let mut runs = vec![
        key(),
        not_null("started_at", Kind::Stamp),
        null("finished_at", Kind::Stamp),
        not_null("mode", text(RUN_MODE_CHARS)),
        not_null("status", text(RUN_STATUS_CHARS)),
    ];
    for n in [
        "leads_read",
        "leads_upserted",
        "leads_deleted",
        "contact_values",
        "error_rows",
        "requests",
    ] {
        runs.push(null(n, Kind::BigInt));
    }
    runs.extend([
        null("server_seconds", Kind::Float),
        null("seconds", Kind::Float),
        null("exit_code", Kind::Int),
        null("message", text(RUN_MESSAGE_CHARS)),
    ]);
    let operators = vec![
        on_sqlite(
            not_null("user_id", text(OPERATOR_USER_ID_CHARS)),
            "TEXT",
            true,
        ),
        null("name", text(OPERATOR_NAME_CHARS)),
        null("last_name", text(OPERATOR_NAME_CHARS)),
        null("email", text(OPERATOR_EMAIL_CHARS)),
        null("phone_inner", text(OPERATOR_EXTENSION_CHARS)),
        null("active", Kind::Bool),
        stamp_text("details_at", true),
        stamp_text("updated_at", false),
    ];
    // One row per entity waiting for `b24sync serve`'s worker: a flood of events for the
    // same ID coalesces into it (`revision` counts the events, so a row queued again while
    // the worker read it is not removed with the older event). Times are UTC milliseconds
    // since 1970 (the event-to-row lag is measured from them).
    let queue = vec![
        not_null("entity_type", ascii(QUEUE_ENTITY_CHARS)),
        not_null("entity_id", Kind::BigInt),
        not_null("event_action", ascii(QUEUE_ACTION_CHARS)),
        not_null("first_queued_ms", Kind::BigInt),
        not_null("last_queued_ms", Kind::BigInt),
        not_null("revision", Kind::BigInt),
        not_null("attempts", Kind::Int),
        null("last_error", text(QUEUE_ERROR_CHARS)),
    ];
    let b = Owner::B24sync;
    vec![
        describe("b24sync_migrations", b, migrations, &["version"]),
        describe("b24sync_state", b, state, &["name"]),
        describe("b24sync_runs", b, runs, &["Id"]),
        describe(LEAD.phones_table, b, phones(&LEAD), &["Id"]),
        describe("b24sync_operators", b, operators, &["user_id"]),
        describe(
            LEAD.fingerprints_table,
            b,
            fingerprints(&LEAD),
            &["lead_id"],
        ),
        describe(EVENT_QUEUE_TABLE, b, queue, &["entity_type", "entity_id"]),
    ]
}

/// The tables of the entities besides the lead (contacts, companies): b24sync's own, in
/// the lead's shape, one set per entity.
fn other_entities() -> Vec<Table> {
    let b = Owner::B24sync;
    let mut all = Vec::new();
    for e in ENTITIES.iter().filter(|e| **e != LEAD) {
        all.extend([
            describe(e.table, b, records(e), &["Id"]),
            describe(e.multi_table, b, multi_values(e), &["Id"]),
            describe(e.error_table, b, errors(e), &["Id"]),
            describe(e.phones_table, b, phones(e), &["Id"]),
            // Built once (the table list is a LazyLock): the key names the entity's column.
            describe(
                e.fingerprints_table,
                b,
                fingerprints(e),
                Box::leak(Box::new([e.phones_owner])),
            ),
        ]);
    }
    all
}

/// One row per record: `sql_ID` and a column per field.
fn records(e: &Entity) -> Vec<Column> {
    let mut columns = vec![key(), not_null("sql_ID", Kind::Int)];
    columns.extend(
        e.fields
            .iter()
            .map(|f| col(f.sql_name(), f.kind.into(), true)),
    );
    columns
}

/// One row per PHONE/EMAIL/WEB/IM value of a record.
fn multi_values(e: &Entity) -> Vec<Column> {
    let mut columns = vec![key(), null(e.multi_owner, Kind::Int)];
    columns.extend(small_texts(&[
        e.multi_value_id,
        "sql_VALUE_TYPE",
        "sql_VALUE",
        "sql_TYPE_ID",
    ]));
    columns
}

/// A record that could not be stored as received: its ID as text, the reason, its JSON.
fn errors(e: &Entity) -> Vec<Column> {
    let mut columns = vec![key()];
    columns.extend(small_texts(&["sql_ID", "sql_error"]));
    columns.push(null(e.error_json, Kind::LongText));
    columns.push(null("sql_date_error", Kind::DateTime));
    columns
}

/// Every PHONE value of a record, normalised for the caller lookup.
fn phones(e: &Entity) -> Vec<Column> {
    vec![
        key(),
        not_null(e.phones_owner, Kind::Int),
        null(e.phones_value_id, text(SMALL_TEXT_CHARS)),
        not_null("value", text(SMALL_TEXT_CHARS)),
        // E.164 is at most 15 digits after the '+'; the tail is E.164's 15 digits.
        null("e164", ascii(16)),
        null("extension", ascii(10)),
        null("digits_rev", ascii(15)),
        not_null("normalisable", Kind::Bool),
        null("reason", text(PHONE_REASON_CHARS)),
    ]
}

/// One row per record written without problems: the fingerprint of what was written
/// (src/prepare/fingerprint.rs), so a later sync skips the record while it is unchanged.
fn fingerprints(e: &Entity) -> Vec<Column> {
    vec![
        not_null(e.phones_owner, Kind::Int),
        not_null("fingerprint", Kind::BigInt),
    ]
}

static TABLES: LazyLock<Vec<Table>> = LazyLock::new(|| {
    let mut all = oktell();
    all.extend(own());
    all.extend(other_entities());
    all
});

/// Every table b24sync reads or writes: the six Oktell tables in the contract's order, then
/// b24sync's own.
pub fn tables() -> &'static [Table] {
    &TABLES
}

/// The six Oktell tables, in the contract's order.
pub fn contract_tables() -> impl Iterator<Item = &'static Table> {
    tables().iter().filter(|t| t.owner == Owner::Oktell)
}

/// One table by name.
pub fn table(name: &str) -> Option<&'static Table> {
    tables().iter().find(|t| t.name == name)
}

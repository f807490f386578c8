//! The conformance suite of the store contracts (`src/store/roles.rs`): the same tests run
//! against both backends, through `load::Stores` and the role traits only.
//!
//! Every contract test is written once, as `async fn name(kind: Kind)` in `tests/stores/`,
//! and [`contract!`] turns it into two tests: `sqlite_name`, which always runs on a fresh
//! SQLite file, and `mssql_name`, which runs on a fresh SQL Server database and is
//! `#[ignore]`d, so a plain `cargo test` reports it as ignored (never as passed). Run those
//! with an ADO.NET string whose login may create databases:
//!     B24SYNC_TEST_MSSQL='Server=tcp:localhost,1433;User Id=sa;Password=...;TrustServerCertificate=true' \
//!         cargo test --test stores -- --include-ignored --test-threads=2
//! Asked to run without the variable, they fail saying so. What only one backend has stays
//! apart: SQL Server's in `tests/mssql_live.rs`, SQLite's in `tests/stores/sqlite_only.rs`.

mod mssql_support;

#[path = "stores/admin.rs"]
mod admin;
#[path = "stores/awkward.rs"]
mod awkward;
#[path = "stores/backend.rs"]
mod backend;
#[path = "stores/batches.rs"]
mod batches;
#[path = "stores/build.rs"]
mod build;
#[path = "stores/entities.rs"]
mod entities;
#[path = "stores/fingerprints.rs"]
mod fingerprints;
#[path = "stores/queue.rs"]
mod queue;
#[path = "stores/sqlite_only.rs"]
mod sqlite_only;
#[path = "stores/tables.rs"]
mod tables;

use admin::*;
use awkward::*;
use backend::Kind;
use batches::*;
use entities::*;
use fingerprints::*;
use queue::*;
use tables::*;

/// `name: sqlite_name, mssql_name;` makes the two tests of the contract test `name`. A
/// leading `#[waits = "..."]` ignores both for that reason: a contract the backends do not
/// meet yet, said where it shows.
macro_rules! contract {
    () => {};
    (#[waits = $why:literal] $name:ident: $sqlite:ident, $mssql:ident; $($rest:tt)*) => {
        contract!(@pair $why, $why, $name, $sqlite, $mssql);
        contract!($($rest)*);
    };
    ($name:ident: $sqlite:ident, $mssql:ident; $($rest:tt)*) => {
        #[tokio::test]
        async fn $sqlite() {
            $name(Kind::Sqlite).await
        }
        contract!(@mssql "needs B24SYNC_TEST_MSSQL (an ADO.NET connection string)", $name, $mssql);
        contract!($($rest)*);
    };
    (@pair $sqlite_why:literal, $mssql_why:literal, $name:ident, $sqlite:ident, $mssql:ident) => {
        #[tokio::test]
        #[ignore = $sqlite_why]
        async fn $sqlite() {
            $name(Kind::Sqlite).await
        }
        contract!(@mssql $mssql_why, $name, $mssql);
    };
    (@mssql $why:literal, $name:ident, $mssql:ident) => {
        #[tokio::test]
        #[ignore = $why]
        async fn $mssql() {
            $name(Kind::Mssql).await
        }
    };
}

contract! {
    // SchemaAdmin
    init_schema_is_idempotent: sqlite_init_schema_is_idempotent, mssql_init_schema_is_idempotent;
    diagnose_passes_on_a_fresh_database: sqlite_diagnose_passes_on_a_fresh_database, mssql_diagnose_passes_on_a_fresh_database;
    diagnose_changes_nothing_on_an_empty_database: sqlite_diagnose_changes_nothing_on_an_empty_database, mssql_diagnose_changes_nothing_on_an_empty_database;
    diagnose_names_a_missing_table: sqlite_diagnose_names_a_missing_table, mssql_diagnose_names_a_missing_table;
    // RunLock / RunLockGuard
    one_run_at_a_time: sqlite_one_run_at_a_time, mssql_one_run_at_a_time;
    closing_the_stores_releases_the_run_lock: sqlite_closing_the_stores_releases_the_run_lock, mssql_closing_the_stores_releases_the_run_lock;
    dropping_the_guard_releases_the_run_lock: sqlite_dropping_the_guard_releases_the_run_lock, mssql_dropping_the_guard_releases_the_run_lock;
    // BatchWriter
    full_load_reads_back_exactly_and_reruns_change_nothing: sqlite_full_load_reads_back_exactly_and_reruns_change_nothing, mssql_full_load_reads_back_exactly_and_reruns_change_nothing;
    removed_and_changed_contact_values_are_replaced: sqlite_removed_and_changed_contact_values_are_replaced, mssql_removed_and_changed_contact_values_are_replaced;
    error_rows_follow_the_contract: sqlite_error_rows_follow_the_contract, mssql_error_rows_follow_the_contract;
    preview_reports_what_the_load_then_does_and_changes_nothing: sqlite_preview_reports_what_the_load_then_does_and_changes_nothing, mssql_preview_reports_what_the_load_then_does_and_changes_nothing;
    an_awkward_batch_gives_the_same_rows_and_error_rows: sqlite_an_awkward_batch_gives_the_same_rows_and_error_rows, mssql_an_awkward_batch_gives_the_same_rows_and_error_rows;
    // DeletionStore
    lead_ids_lists_every_stored_lead: sqlite_lead_ids_lists_every_stored_lead, mssql_lead_ids_lists_every_stored_lead;
    delete_leads_removes_exactly_those_leads_and_their_rows: sqlite_delete_leads_removes_exactly_those_leads_and_their_rows, mssql_delete_leads_removes_exactly_those_leads_and_their_rows;
    delete_leads_is_one_transaction: sqlite_delete_leads_is_one_transaction, mssql_delete_leads_is_one_transaction;
    // FingerprintStore, with what BatchWriter and DeletionStore do to the fingerprints
    fingerprints_are_written_with_the_batch_and_never_by_a_preview: sqlite_fingerprints_are_written_with_the_batch_and_never_by_a_preview, mssql_fingerprints_are_written_with_the_batch_and_never_by_a_preview;
    // EventQueue
    queue_coalesces_and_removes_only_what_was_read: sqlite_queue_coalesces_and_removes_only_what_was_read, mssql_queue_coalesces_and_removes_only_what_was_read;
    queue_counts_failures_and_puts_them_last: sqlite_queue_counts_failures_and_puts_them_last, mssql_queue_counts_failures_and_puts_them_last;
    delete_leads_removes_their_fingerprints: sqlite_delete_leads_removes_their_fingerprints, mssql_delete_leads_removes_their_fingerprints;
    // Contacts and companies, through the same roles
    contacts_and_companies_load_reload_edit_and_delete: sqlite_contacts_and_companies_load_reload_edit_and_delete, mssql_contacts_and_companies_load_reload_edit_and_delete;
    an_entitys_error_rows_go_to_its_own_error_table: sqlite_an_entitys_error_rows_go_to_its_own_error_table, mssql_an_entitys_error_rows_go_to_its_own_error_table;
    every_field_of_contacts_and_companies_reads_back_exactly: sqlite_every_field_of_contacts_and_companies_reads_back_exactly, mssql_every_field_of_contacts_and_companies_reads_back_exactly;
    entities_with_the_same_ids_do_not_touch_each_other: sqlite_entities_with_the_same_ids_do_not_touch_each_other, mssql_entities_with_the_same_ids_do_not_touch_each_other;
    // ErrorReview
    error_rows_are_listed_with_dates_and_cleared_by_date: sqlite_error_rows_are_listed_with_dates_and_cleared_by_date, mssql_error_rows_are_listed_with_dates_and_cleared_by_date;
    error_rows_are_deleted_by_row_id: sqlite_error_rows_are_deleted_by_row_id, mssql_error_rows_are_deleted_by_row_id;
    // StateStore
    state_round_trips_and_is_overwritten: sqlite_state_round_trips_and_is_overwritten, mssql_state_round_trips_and_is_overwritten;
    // RunHistory
    run_history_starts_finishes_and_lists_newest_first: sqlite_run_history_starts_finishes_and_lists_newest_first, mssql_run_history_starts_finishes_and_lists_newest_first;
    runtime_row_one_is_stamped: sqlite_runtime_row_one_is_stamped, mssql_runtime_row_one_is_stamped;
    // OperatorStore
    operators_are_upserted_and_id_only_rows_keep_their_details: sqlite_operators_are_upserted_and_id_only_rows_keep_their_details, mssql_operators_are_upserted_and_id_only_rows_keep_their_details;
    // CallerLookup
    caller_lookup_matches_any_spelling_newest_first: sqlite_caller_lookup_matches_any_spelling_newest_first, mssql_caller_lookup_matches_any_spelling_newest_first;
    // TokenStore / TokenLock
    token_store_locks_per_app_and_round_trips: sqlite_token_store_locks_per_app_and_round_trips, mssql_token_store_locks_per_app_and_round_trips;
    token_locks_of_different_apps_are_independent: sqlite_token_locks_of_different_apps_are_independent, mssql_token_locks_of_different_apps_are_independent;
}

/// Runs without a server: what the suite promises about itself.
#[test]
fn every_contract_runs_on_both_backends_and_mssql_fails_loudly_without_a_server() {
    let source = include_str!("stores.rs");
    let body = source
        .split("contract! {\n")
        .nth(1)
        .and_then(|rest| rest.split("\n}\n").next())
        .expect("the contract! list");
    let mut contracts = 0;
    for line in body.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("//") || line.starts_with("#[") {
            continue;
        }
        let (name, pair) = line
            .split_once(": ")
            .expect("name: sqlite_name, mssql_name;");
        let pair = pair.trim_end_matches(';');
        assert_eq!(
            pair,
            format!("sqlite_{name}, mssql_{name}"),
            "{name}: the two tests must be named sqlite_{name} and mssql_{name}"
        );
        contracts += 1;
    }
    assert!(contracts >= 23, "{contracts} contract tests found");
    // Without the variable, asking for an mssql_ test is a failure that says what is missing.
    if std::env::var(mssql_support::ENV).map_or(true, |v| v.trim().is_empty()) {
        let err =
            std::panic::catch_unwind(mssql_support::require_server).expect_err("must not pass");
        let text = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(text.contains("B24SYNC_TEST_MSSQL is not set"), "{text}");
    }
}

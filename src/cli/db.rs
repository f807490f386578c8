//! The commands about the database itself: `init-db`, `status`, and `errors` (list, retry,
//! clear the rows of bitrix_import_lead_error).

use super::args::{ErrorsCommand, RetryArgs};
use super::client::client_for;
use super::groups::{DbArgs, SyncArgs};
use super::open::open_stores;
use super::settings::{FileSettings, Settings};
use super::signals::interrupt_token;
use super::{exit, fail, ops, run_error_code, ui};
use b24sync::run;
use b24sync::store::StoredError;

/// `init-db`: create what is missing of the schema.
pub(super) async fn init_db_command(s: &Settings) -> u8 {
    let stores = match open_stores(s).await {
        Ok(stores) => stores,
        Err(code) => return code,
    };
    match stores.schema.init_schema().await {
        Ok(report) => {
            // One line per migration applied (the objects each created are logged at -v);
            // with -q nothing, unless something needs a person (the warnings below).
            if !ui::get().quiet {
                for c in &report.created {
                    println!("created {c}");
                }
                if report.created.is_empty() {
                    println!("{}: schema up to date, nothing to create", stores.target);
                }
            }
            for w in &report.warnings {
                ui::warn(w);
            }
            exit::OK
        }
        Err(e) => run_error_code(&e.into()),
    }
}

/// `status`: the watermark and the last runs (printed by `ops`).
pub(super) async fn status_command(db: DbArgs, limit: u32, json: bool, file: &FileSettings) -> u8 {
    let s = match settings_for_db(db, file) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match open_stores(&s).await {
        Ok(stores) => ops::status_command(&stores, limit, json).await,
        Err(code) => code,
    }
}

/// `errors list|retry|clear`.
pub(super) async fn errors_command(cmd: ErrorsCommand, file: &FileSettings) -> u8 {
    match cmd {
        ErrorsCommand::List { db, json } => errors_list(db, json, file).await,
        ErrorsCommand::Retry(args) => errors_retry(&args, file).await,
        ErrorsCommand::Clear { db, before } => errors_clear(db, &before, file).await,
    }
}

/// The settings of a command that has only the database flags.
fn settings_for_db(db: DbArgs, file: &FileSettings) -> Result<Settings, u8> {
    Settings::resolve(
        &SyncArgs {
            db,
            ..Default::default()
        },
        file,
    )
    .map_err(|e| fail(exit::CONFIG, &e))
}

/// A row whose lead ID is not a number cannot be read again: say so on the row, and what
/// clears it.
const NOT_RETRYABLE: &str = "[not retryable: the lead ID is not a number; the next full sync \
     clears this row once Bitrix24 no longer returns such a lead, or remove it with \
     `b24sync errors clear`]";

async fn errors_list(db: DbArgs, json: bool, file: &FileSettings) -> u8 {
    let s = match settings_for_db(db, file) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let stores = match open_stores(&s).await {
        Ok(stores) => stores,
        Err(code) => return code,
    };
    let rows = match stores.errors.error_rows().await {
        Ok(rows) => rows,
        Err(e) => return run_error_code(&e.into()),
    };
    for r in &rows {
        print_error_row(r, json);
    }
    if !json {
        let stuck = rows
            .iter()
            .filter(|r| r.numeric_lead_id().is_none())
            .count();
        ui::note(&format!("{} rows in bitrix_import_lead_error", rows.len()));
        if stuck > 0 {
            ui::note(&format!(
                "{stuck} of them cannot be retried (their lead ID is not a number): a full \
                 sync (`b24sync sync --full`) clears them once Bitrix24 no longer returns such leads"
            ));
        }
    }
    exit::OK
}

/// One row of `errors list`: a JSON object, or tab-separated ID, date and reason.
fn print_error_row(r: &StoredError, json: bool) {
    let retryable = r.numeric_lead_id().is_some();
    if json {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("retryable".into(), retryable.into());
        }
        println!("{v}");
    } else {
        println!(
            "{}\t{}\t{}{}",
            r.lead_id.as_deref().unwrap_or("-"),
            r.at.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            r.reason.as_deref().unwrap_or(""),
            if retryable {
                String::new()
            } else {
                format!("\t{NOT_RETRYABLE}")
            }
        );
    }
}

async fn errors_retry(args: &RetryArgs, file: &FileSettings) -> u8 {
    let s = match Settings::resolve(args, file) {
        Ok(s) => s,
        Err(e) => return fail(exit::CONFIG, &e),
    };
    let cancel = interrupt_token();
    let client = match client_for(&s, cancel) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let stores = match open_stores(&s).await {
        Ok(stores) => stores,
        Err(code) => return code,
    };
    match run::retry_errors(&client, &(&stores).into(), &s.sync_options()).await {
        Ok(r) => {
            println!(
                "{} leads read again: {} now load cleanly, {} still fail; {} no longer in Bitrix24 (removed); \
                 {} rows have no numeric lead ID and cannot be retried{}",
                r.retried, r.now_clean, r.still_failing, r.gone, r.not_retryable,
                if r.not_retryable > 0 {
                    " (a full sync clears them once Bitrix24 no longer returns such leads)"
                } else {
                    ""
                }
            );
            if r.still_failing > 0 || r.not_retryable > 0 {
                exit::LOADED_WITH_ERRORS
            } else {
                exit::OK
            }
        }
        Err(e) => run_error_code(&e),
    }
}

async fn errors_clear(db: DbArgs, before: &str, file: &FileSettings) -> u8 {
    let s = match settings_for_db(db, file) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(before) = parse_local_datetime(before) else {
        return fail(
            exit::CONFIG,
            &anyhow::anyhow!(
                "--before {before:?} is not a date: use YYYY-MM-DD or YYYY-MM-DD HH:MM:SS"
            ),
        );
    };
    let stores = match open_stores(&s).await {
        Ok(stores) => stores,
        Err(code) => return code,
    };
    match stores.errors.clear_errors(before).await {
        Ok(n) => {
            println!("deleted {n} rows of bitrix_import_lead_error dated before {before}");
            exit::OK
        }
        Err(e) => run_error_code(&e.into()),
    }
}

fn parse_local_datetime(s: &str) -> Option<chrono::NaiveDateTime> {
    let s = s.trim();
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
}

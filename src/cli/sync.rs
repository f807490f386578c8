//! `sync` (one run) and `run --every` (one incremental run per interval), and how a run's
//! outcome is reported.

use tokio_util::sync::CancellationToken;

use super::client::client_for;
use super::open::open_stores;
use super::settings::Settings;
use super::signals::interrupt_token;
use super::{auth, exit, ui};
use b24sync::run::{self, RunError, RunSummary, SyncOptions};

pub(super) async fn sync_command(s: &Settings) -> u8 {
    let cancel = interrupt_token();
    sync_once(s, cancel).await
}

async fn sync_once(s: &Settings, cancel: CancellationToken) -> u8 {
    let client = match &s.client_id {
        Some(_) => auth::oauth_client(s, cancel.clone()).await,
        None => client_for(s, cancel.clone()),
    };
    let client = match client {
        Ok(c) => c,
        Err(code) => return code,
    };
    let stores = match open_stores(s).await {
        Ok(stores) => stores,
        Err(code) => return code,
    };
    tracing::info!(auth = %client.describe(), db = %stores.target, "sync starting");
    let opts = SyncOptions {
        progress: ui::progress(),
        ..s.sync_options()
    };
    finish(run::sync(&client, &(&stores).into(), &opts, cancel).await)
}

/// `run --every`: one incremental sync per interval until interrupted. A failed run is
/// logged and the next interval tries again, except for failures that cannot heal by
/// waiting (configuration, refused credentials).
pub(super) async fn scheduled_command(s: &Settings, every: std::time::Duration) -> u8 {
    let cancel = interrupt_token();
    tracing::info!(
        every_s = every.as_secs(),
        "running a sync every interval (Ctrl-C to stop)"
    );
    loop {
        let started = tokio::time::Instant::now();
        let code = sync_once(s, cancel.clone()).await;
        if cancel.is_cancelled() {
            tracing::info!("stopped");
            return exit::OK;
        }
        if matches!(code, exit::CONFIG | exit::BITRIX_REFUSED) {
            return code;
        }
        tokio::select! {
            _ = cancel.cancelled() => {
                tracing::info!("stopped");
                return exit::OK;
            }
            _ = tokio::time::sleep_until(started + every) => {}
        }
    }
}

/// The run's last words. With `-q` a scheduled run that needs no one says nothing: exit 0,
/// or 3 with only error rows someone was already told about (cron mails whatever is
/// printed). New error rows still print, one line each, and so does everything else.
fn finish(result: Result<RunSummary, RunError>) -> u8 {
    match result {
        Ok(summary) => {
            let code = exit::for_summary(&summary);
            let quiet = ui::get().quiet && !ui::get().json;
            for (lead, reason) in &summary.new_error_rows {
                ui::warn(&format!(
                    "new row in bitrix_import_lead_error: lead {lead}: {reason}"
                ));
            }
            let more = summary
                .outcome
                .error_rows_new
                .saturating_sub(summary.new_error_rows.len() as u64);
            if more > 0 {
                ui::warn(&format!(
                    "... and {more} more new rows in bitrix_import_lead_error (see `b24sync errors list`)"
                ));
            }
            if quiet && matches!(code, exit::OK | exit::LOADED_WITH_ERRORS) {
                return code;
            }
            ui::summary(&summary, code);
            if summary.interrupted {
                ui::note(&run::interrupted_note(&summary));
            }
            code
        }
        Err(e) => {
            let code = exit::for_error(&e);
            ui::failure(&e.to_string(), code);
            code
        }
    }
}

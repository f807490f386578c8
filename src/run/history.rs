//! The run history (`b24sync_runs`): a row written when a run starts and completed when it
//! ends, so a run that died shows as unfinished. The history is for people: failing to
//! write it is logged, never the reason a sync fails.

use crate::store::{RunHistory, RunRecord};

use super::{local_now, RunError, RunSummary, Status};

/// Write the row of a run that starts now; `None` (logged) when it cannot be written.
pub(super) async fn start_history(history: &dyn RunHistory, mode: &str) -> Option<RunRecord> {
    let mut record = RunRecord {
        started_at: Some(local_now()),
        mode: mode.to_string(),
        status: "running".into(),
        ..RunRecord::default()
    };
    match history.run_started(&record).await {
        Ok(id) => {
            record.id = id;
            Some(record)
        }
        Err(e) => {
            tracing::warn!("could not write the run history row: {e}");
            None
        }
    }
}

/// Complete the run's history row. The history is for people: failing to write it is
/// logged, never the reason a sync fails.
pub(super) async fn finish_history(
    history: &dyn RunHistory,
    mut record: RunRecord,
    result: &Result<RunSummary, RunError>,
    refused: Option<&RunSummary>,
) {
    record.finished_at = Some(local_now());
    let counts = |record: &mut RunRecord, s: &RunSummary| {
        record.leads_read = s.leads_read as i64;
        record.leads_upserted = (s.outcome.leads_inserted + s.outcome.leads_updated) as i64;
        record.leads_deleted = s.leads_deleted as i64;
        record.contact_values = s.contact_values as i64;
        record.error_rows = s.outcome.error_rows as i64;
        record.requests = s.requests as i64;
        record.server_seconds = s.server_secs;
        record.seconds = s.elapsed.as_secs_f64();
    };
    match result {
        Ok(s) => {
            let status = s.status();
            record.status = match status {
                Status::Ok => "ok",
                Status::Interrupted => "interrupted",
                _ => "errors",
            }
            .to_string();
            record.exit_code = Some(status.code() as i64);
            counts(&mut record, s);
        }
        // The deletion guard refused after the leads were loaded: the run did change
        // data, and its history row says how much.
        Err(e @ RunError::DeletionGuard { .. }) if refused.is_some() => {
            record.status = "refused".to_string();
            record.exit_code = Some(e.status().code() as i64);
            record.message = Some(crate::model::clip_reason(&e.to_string()));
            if let Some(s) = refused {
                counts(&mut record, s);
            }
        }
        Err(e) => {
            record.status = "failed".to_string();
            record.exit_code = Some(e.status().code() as i64);
            record.message = Some(crate::model::clip_reason(&e.to_string()));
            record.seconds = record
                .started_at
                .and_then(|s| {
                    record
                        .finished_at
                        .map(|f| (f - s).num_milliseconds() as f64 / 1000.0)
                })
                .unwrap_or(0.0);
        }
    }
    if let Err(e) = history.run_finished(&record).await {
        tracing::warn!("could not complete the run history row: {e}");
    }
}

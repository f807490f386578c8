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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use chrono::NaiveDateTime;

    use super::*;
    use crate::store::StoreError;

    /// A run history that keeps the completed rows.
    #[derive(Default)]
    struct Kept(Mutex<Vec<RunRecord>>);

    #[async_trait]
    impl RunHistory for Kept {
        async fn run_started(&self, _: &RunRecord) -> Result<i64, StoreError> {
            Ok(1)
        }
        async fn run_finished(&self, record: &RunRecord) -> Result<(), StoreError> {
            self.0.lock().unwrap().push(record.clone());
            Ok(())
        }
        async fn recent_runs(&self, _: u32) -> Result<Vec<RunRecord>, StoreError> {
            Ok(Vec::new())
        }
        async fn stamp_runtime(&self, _: NaiveDateTime) -> Result<(), StoreError> {
            Ok(())
        }
    }

    async fn finished(
        result: Result<RunSummary, RunError>,
        refused: Option<RunSummary>,
    ) -> RunRecord {
        let kept = Kept::default();
        let record = start_history(&kept, "full").await.unwrap();
        finish_history(&kept, record, &result, refused.as_ref()).await;
        let rows = kept.0.into_inner().unwrap();
        assert_eq!(rows.len(), 1);
        rows[0].clone()
    }

    // The row records the run's status and the exit code that status has.
    #[tokio::test]
    async fn the_row_says_how_the_run_ended() {
        let clean = finished(Ok(RunSummary::default()), None).await;
        assert_eq!((clean.status.as_str(), clean.exit_code), ("ok", Some(0)));
        let held = RunSummary {
            error_rows_held: 2,
            leads_read: 7,
            ..RunSummary::default()
        };
        let errors = finished(Ok(held.clone()), None).await;
        assert_eq!(
            (errors.status.as_str(), errors.exit_code),
            ("errors", Some(3))
        );
        assert_eq!(errors.leads_read, 7);
        let guard = RunError::DeletionGuard {
            plural: "leads",
            would_delete: 9,
            in_table: 10,
            max_share: 0.2,
        };
        let refused = finished(Err(guard), Some(held)).await;
        assert_eq!(
            (refused.status.as_str(), refused.exit_code),
            ("refused", Some(9))
        );
        assert_eq!(
            refused.leads_read, 7,
            "a refused run still counts what it loaded"
        );
        let failed = finished(Err(RunError::Config("bad".into())), None).await;
        assert_eq!(
            (failed.status.as_str(), failed.exit_code),
            ("failed", Some(2))
        );
        assert_eq!(failed.message.as_deref(), Some("bad"));
    }
}

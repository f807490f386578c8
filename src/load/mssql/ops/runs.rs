//! The run history (`dbo.b24sync_runs`, migration 5): a run's row when it starts, its
//! figures when it ends, the newest runs for `b24sync runs`.

use chrono::{NaiveDateTime, Timelike};
use tiberius::Row;

use super::super::{sql, Client};
use crate::model::truncate_utf16;
use crate::schema::{RUN_MESSAGE_CHARS, RUN_MODE_CHARS, RUN_STATUS_CHARS};
use crate::store::RunRecord;

/// Sizes of the run-history text columns (the schema description's): longer text would be
/// an error, not a cut.
const MODE_CHARS: usize = RUN_MODE_CHARS;
const STATUS_CHARS: usize = RUN_STATUS_CHARS;
const MESSAGE_CHARS: usize = RUN_MESSAGE_CHARS;

/// `datetime2(0)` would round fractions to the nearest second; cut them instead, as the
/// embedded database's text format does, so both store the same second.
fn whole_second(t: NaiveDateTime) -> NaiveDateTime {
    t.with_nanosecond(0).unwrap_or(t)
}

fn now_local() -> NaiveDateTime {
    chrono::Local::now().naive_local()
}

pub(in crate::load::mssql) async fn run_started(
    c: &mut Client,
    record: &RunRecord,
) -> tiberius::Result<i64> {
    let started = whole_second(record.started_at.unwrap_or_else(now_local));
    let mode = truncate_utf16(&record.mode, MODE_CHARS);
    let sets = c
        .query(sql::RUNS_INSERT, &[&started, &mode])
        .await?
        .into_results()
        .await?;
    last_row(&sets)
        .and_then(|r| r.get::<i64, _>("Id"))
        .ok_or_else(|| tiberius::error::Error::Protocol("runs_insert.sql returned no Id".into()))
}

/// Returns how many rows were completed (0: no run with that Id).
pub(in crate::load::mssql) async fn run_finished(
    c: &mut Client,
    record: &RunRecord,
) -> tiberius::Result<u64> {
    let finished = whole_second(record.finished_at.unwrap_or_else(now_local));
    let status = truncate_utf16(&record.status, STATUS_CHARS);
    let message = truncate_utf16(record.message.as_deref().unwrap_or(""), MESSAGE_CHARS);
    // No NULL parameter (see runs_finish.sql): a flag says whether the exit code is known.
    let (has_exit, exit) = match record.exit_code {
        Some(code) => (1i32, i32::try_from(code).unwrap_or(i32::MAX)),
        None => (0i32, 0i32),
    };
    let sets = c
        .query(
            sql::RUNS_FINISH,
            &[
                &record.id,
                &finished,
                &status,
                &record.leads_read,
                &record.leads_upserted,
                &record.leads_deleted,
                &record.contact_values,
                &record.error_rows,
                &record.requests,
                &record.server_seconds,
                &record.seconds,
                &has_exit,
                &exit,
                &message,
            ],
        )
        .await?
        .into_results()
        .await?;
    let n = last_row(&sets)
        .and_then(|r| r.get::<i32, _>("runs_updated"))
        .unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The first row of the last result set: the statement files end with the SELECT that
/// answers, whatever the statements before it report.
fn last_row(sets: &[Vec<Row>]) -> Option<&Row> {
    sets.iter().rev().find_map(|s| s.first())
}

pub(in crate::load::mssql) async fn recent_runs(
    c: &mut Client,
    limit: u32,
) -> tiberius::Result<Vec<RunRecord>> {
    let rows = c
        .query(sql::RUNS_RECENT, &[&i64::from(limit)])
        .await?
        .into_first_result()
        .await?;
    rows.iter().map(run_record).collect()
}

fn run_record(r: &Row) -> tiberius::Result<RunRecord> {
    let n = |name: &str| -> tiberius::Result<i64> { Ok(r.try_get::<i64, _>(name)?.unwrap_or(0)) };
    let f = |name: &str| -> tiberius::Result<f64> { Ok(r.try_get::<f64, _>(name)?.unwrap_or(0.0)) };
    let s = |name: &str| -> tiberius::Result<Option<String>> {
        Ok(r.try_get::<&str, _>(name)?.map(str::to_string))
    };
    Ok(RunRecord {
        id: n("Id")?,
        started_at: r.try_get::<NaiveDateTime, _>("started_at")?,
        finished_at: r.try_get::<NaiveDateTime, _>("finished_at")?,
        mode: s("mode")?.unwrap_or_default(),
        status: s("status")?.unwrap_or_default(),
        leads_read: n("leads_read")?,
        leads_upserted: n("leads_upserted")?,
        leads_deleted: n("leads_deleted")?,
        contact_values: n("contact_values")?,
        error_rows: n("error_rows")?,
        requests: n("requests")?,
        server_seconds: f("server_seconds")?,
        seconds: f("seconds")?,
        exit_code: r.try_get::<i32, _>("exit_code")?.map(i64::from),
        message: s("message")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_times_are_cut_to_the_second() {
        let t = chrono::NaiveDate::from_ymd_opt(2024, 1, 2)
            .and_then(|d| d.and_hms_milli_opt(3, 4, 5, 999))
            .expect("date");
        assert_eq!(whole_second(t).to_string(), "2024-01-02 03:04:05");
    }
}

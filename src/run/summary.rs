//! What a run did: the summary, its one-line form for a scheduler's log, and the notes
//! that go with it.

use std::time::Duration;

use crate::store::BatchOutcome;

/// What a run did, for the summary line and the exit code.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// `full` or `incremental`.
    pub mode: String,
    /// For an incremental run: the `DATE_MODIFY` it read from.
    pub since: Option<String>,
    /// Leads Bitrix24 returned.
    pub leads_read: u64,
    pub pages: u64,
    /// Leads written to `bitrix_leads` (inserted, updated or unchanged).
    pub leads_loaded: u64,
    /// Contact values of the loaded leads.
    pub contact_values: u64,
    /// Leads that could not be loaded at all (their whole JSON is in the error table).
    pub leads_rejected: u64,
    pub outcome: BatchOutcome,
    /// Error rows of leads without a numeric ID that this full run cleared (it no longer
    /// read such a lead).
    pub stale_errors_cleared: u64,
    /// Whether this run looked for leads deleted in Bitrix24, and how many it removed.
    pub deletion_checked: bool,
    pub leads_deleted: u64,
    /// The first [`DELETED_SHOWN`] IDs of those leads, lowest first (a dry run lists
    /// what it would delete).
    pub deleted_sample: Vec<i64>,
    pub requests: u64,
    pub retries: u64,
    pub server_secs: f64,
    pub elapsed: Duration,
    /// Stopped by Ctrl-C after committing the batch in flight.
    pub interrupted: bool,
    /// The watermark the run started with (`None`: there was none). An interrupted run
    /// leaves it where it was, so the next run reads from there (or every lead again).
    pub watermark_before: Option<String>,
    /// Operators (`b24sync_operators`) refreshed from `user.get`.
    pub operators: u64,
    /// Things that did not stop the run but need a person (e.g. no `user` scope).
    pub warnings: Vec<String>,
    /// The first [`NEW_ERROR_ROWS_SHOWN`] rows this run added to `bitrix_import_lead_error`
    /// (lead ID as stored, reason): what a quiet scheduled run still reports.
    pub new_error_rows: Vec<(String, String)>,
    /// Rows in `bitrix_import_lead_error` when the run ended (this run's and older ones):
    /// while there are any, the run exits with 3.
    pub error_rows_held: u64,
    /// What the run did with each entity besides the lead (the lead's counts are the fields
    /// above), in `--entities`' order.
    pub entities: Vec<EntityRun>,
}

/// What a run did with one entity besides the lead (contacts, companies).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntityRun {
    /// `contacts`, `companies`.
    pub plural: &'static str,
    /// `full` or `incremental` (each entity has its own watermark).
    pub mode: String,
    /// Records Bitrix24 returned.
    pub read: u64,
    /// Records that could not be loaded at all (their JSON is in the entity's error table).
    pub rejected: u64,
    pub outcome: BatchOutcome,
    /// Multi-field values of the records loaded.
    pub multi_values: u64,
    /// Records deleted in Bitrix24 and removed here (behind the deletion guard).
    pub deleted: u64,
    /// Why the entity was skipped: the portal refused it (no rights, no scope).
    pub skipped: Option<String>,
}

impl EntityRun {
    /// `contacts (full): 20000 read (20000 new, 0 changed, 0 unchanged), 0 deleted`.
    fn describe(&self, dry: bool) -> String {
        if let Some(why) = &self.skipped {
            return format!("{}: skipped ({why})", self.plural);
        }
        let (load, delete) = if dry {
            ("would load", "would delete")
        } else {
            ("loaded", "deleted")
        };
        let o = &self.outcome;
        format!(
            "{} ({}): {} read, {} {load} ({} new, {} changed, {} unchanged), {} values, {} error rows, {} {delete}",
            self.plural,
            self.mode,
            self.read,
            o.leads_inserted + o.leads_updated + o.leads_unchanged,
            o.leads_inserted,
            o.leads_updated,
            o.leads_unchanged,
            self.multi_values,
            o.error_rows,
            self.deleted
        )
    }
}

/// How many deleted lead IDs [`RunSummary::deleted_sample`] keeps.
pub const DELETED_SHOWN: usize = 20;

/// How many of a run's new error rows [`RunSummary::new_error_rows`] lists (the count is
/// in `outcome.error_rows_new`).
pub const NEW_ERROR_ROWS_SHOWN: usize = 20;

/// One line with everything a scheduler's log should keep. A dry run wrote nothing: it
/// says what it *would* load and delete, and which leads it would delete.
pub fn summary_line(s: &RunSummary) -> String {
    let dry = s.mode.starts_with("dry-run");
    let (load, delete) = if dry {
        ("would load", "would delete")
    } else {
        ("loaded", "deleted")
    };
    let deleted_ids = if dry && !s.deleted_sample.is_empty() {
        format!(
            " (lead IDs {})",
            id_list(&s.deleted_sample, s.leads_deleted as usize)
        )
    } else {
        String::new()
    };
    let others: String = s
        .entities
        .iter()
        .map(|e| format!("; {}", e.describe(dry)))
        .collect();
    format!(
        "{} {}: {} leads read, {} {load} ({} new, {} changed, {} unchanged), {} contact values, \
         {} rows in bitrix_import_lead_error, {} {delete}{deleted_ids}{others}, {} requests ({} retried), {:.1} s server time, {:.1} s",
        s.mode,
        if s.interrupted { "sync interrupted" } else { "sync finished" },
        s.leads_read,
        s.leads_loaded,
        s.outcome.leads_inserted,
        s.outcome.leads_updated,
        s.outcome.leads_unchanged,
        s.contact_values,
        s.outcome.error_rows,
        s.leads_deleted,
        s.requests,
        s.retries,
        s.server_secs,
        s.elapsed.as_secs_f64(),
    )
}

/// What an interrupted run means for the next one, in words: every committed batch stays,
/// and the watermark did not move.
pub fn interrupted_note(s: &RunSummary) -> String {
    match &s.watermark_before {
        None => "interrupted: every batch read so far was committed, but this was the first full \
                 read: the next run reads every lead again from the first one (the leads loaded so \
                 far are found unchanged; nothing is lost)"
            .to_string(),
        Some(w) => format!(
            "interrupted: every batch read so far was committed; the watermark stays at {w}, so the \
             next run reads the leads changed since then again (nothing is skipped)"
        ),
    }
}

/// Said once per run (and by `doctor`) when no solution field is configured.
pub const NO_SOLUTION_FIELD: &str =
    "no solution field is set (--solution-field / B24SYNC_SOLUTION_FIELD): \
     bitrix_lead_solution stays empty. Set it to the UF_CRM_... code of the leads' list field \
     (CRM → Settings → Custom fields → Leads, or the REST method crm.lead.userfield.list); \
     `b24sync doctor` lists the portal's list fields";

/// `3, 17, 42` or `3, 17, ... and 480 more`: the first IDs of `total`.
pub fn id_list(sample: &[i64], total: usize) -> String {
    let shown: Vec<String> = sample.iter().map(i64::to_string).collect();
    match total.saturating_sub(sample.len()) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 16.12: what an interrupted run means for the next one, said as it is.
    #[test]
    fn the_interrupted_note_says_what_the_next_run_does() {
        let first = RunSummary {
            interrupted: true,
            ..Default::default()
        };
        let note = interrupted_note(&first);
        assert!(
            note.contains("reads every lead again from the first one"),
            "{note}"
        );
        assert!(!note.contains("continues"), "{note}");
        let later = RunSummary {
            interrupted: true,
            watermark_before: Some("2026-11-20T10:00:00+03:00".into()),
            ..Default::default()
        };
        let note = interrupted_note(&later);
        assert!(
            note.contains("stays at 2026-11-20T10:00:00+03:00"),
            "{note}"
        );
    }

    #[test]
    fn id_lists_say_how_many_more() {
        assert_eq!(id_list(&[3, 17], 2), "3, 17");
        assert_eq!(id_list(&[3, 17], 5), "3, 17 and 3 more");
    }
}

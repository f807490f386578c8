//! Batches and records for the conformance suite. Leads come from `tests/mssql_support`
//! (`lead`: every column filled with something awkward), which needs no server.

use b24sync::model::oauth::{Secret, StoredApp, TokenSet};
use b24sync::model::{Batch, Cell, LeadRecord, Problem, ProblemKind, RejectedLead};
use b24sync::prepare::{prepare, PreparedBatch};
use b24sync::store::RunRecord;
use chrono::NaiveDateTime;

pub use crate::mssql_support::{
    caller_leads, dt, found, idx, lead, lead_with_phones, phone_contacts, query,
};

pub fn now() -> NaiveDateTime {
    dt(2024, 6, 1, 10, 0, 0)
}

/// These records, prepared as `run` prepares every batch.
pub fn batch(records: Vec<LeadRecord>) -> PreparedBatch {
    with_rejected(records, vec![])
}

/// These records and refused leads, prepared.
pub fn with_rejected(records: Vec<LeadRecord>, rejected: Vec<RejectedLead>) -> PreparedBatch {
    prepare(Batch {
        entity: b24sync::schema::LEAD,
        records,
        rejected,
    })
}

pub fn prepared(batch: Batch) -> PreparedBatch {
    prepare(batch)
}

/// A lead that loads with a problem, so the batch leaves an error row for it.
pub fn with_problem(id: i32, detail: &str) -> LeadRecord {
    let mut r = lead(id, 0);
    r.problems.push(Problem {
        field: "TITLE".into(),
        kind: ProblemKind::Truncated,
        detail: detail.into(),
    });
    r
}

/// A lead the transform refused, with or without an ID: only an error row.
pub fn rejected(id: Option<&str>, why: &str) -> RejectedLead {
    RejectedLead {
        lead_id: id.map(str::to_string),
        reason: why.into(),
        raw_json: format!("{{\"ID\":\"{}\"}}", id.unwrap_or("")),
    }
}

/// A small lead: a title, a modification date, these PHONE values (contact ID, value), a
/// solution for even IDs.
pub fn small_lead(id: i32, title: &str, phones: &[(&str, &str)]) -> LeadRecord {
    let mut r = lead(id, 0);
    for cell in r.lead.cells.iter_mut() {
        *cell = Cell::Null;
    }
    r.lead.cells[idx("TITLE")] = Cell::Text(title.to_string());
    r.lead.cells[idx("DATE_MODIFY")] = Cell::DateTime(dt(2024, 3, 1, 10, 4, 5));
    r.contacts = phone_contacts(id, phones);
    r.phones = vec![];
    r.solution = (id % 2 == 0).then(|| format!("solution {id}"));
    r.raw_json = format!(r#"{{"ID":"{id}","TITLE":"{title}"}}"#);
    r
}

pub fn run_record(started: NaiveDateTime, mode: &str) -> RunRecord {
    RunRecord {
        started_at: Some(started),
        mode: mode.into(),
        ..Default::default()
    }
}

pub fn stored_app(client_id: &str, access: &str, redirect: Option<&str>) -> StoredApp {
    let obtained = chrono::DateTime::from_timestamp(1_717_236_000, 0).expect("time");
    StoredApp {
        client_id: client_id.into(),
        client_secret: Secret::new("s3cret"),
        redirect_uri: redirect.map(str::to_string),
        oauth_server: Some("https://oauth.bitrix.info".into()),
        tokens: TokenSet {
            access_token: Secret::new(access),
            refresh_token: Secret::new(format!("refresh-{access}")),
            expires_in: "3600".into(),
            expires_at: obtained.timestamp() + 3600,
            obtained_at: obtained,
            scope: "crm".into(),
            domain: "acme.bitrix24.ru".into(),
            member_id: "m1".into(),
            user_id: "1".into(),
            client_endpoint: "https://acme.bitrix24.ru/rest/".into(),
            server_endpoint: Some("https://oauth.bitrix.info/rest/".into()),
        },
    }
}

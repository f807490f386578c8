//! Commands for the person who looks after b24sync: `status`, `doctor`, `config example`.

use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::settings::Settings;
use super::{exit, ui};
use b24sync::extract::client::{Bitrix24Client, ExtractError};
use b24sync::extract::paging::ExportFilter;
use b24sync::extract::portal::{self, SolutionFieldCheck};
use b24sync::load::Stores;
use b24sync::run::state_keys;
use b24sync::schema::Entity;
use b24sync::store::{RunLock, RunRecord, StoreError};

/// `b24sync status`: the watermark and the last runs.
pub async fn status_command(stores: &Stores, limit: u32, json_out: bool) -> u8 {
    let watermark = stores.state.read_state(state_keys::WATERMARK).await;
    let runs = stores.history.recent_runs(limit).await;
    let (watermark, runs) = match (watermark, runs) {
        (Ok(w), Ok(r)) => (w, r),
        (Err(e), _) | (_, Err(e)) => {
            ui::error(&e.to_string());
            return exit::DATABASE;
        }
    };
    // A run without an end is running while someone holds the run lock (only the newest
    // such row can be that run); otherwise it died (killed, power loss).
    let newest_open = runs.iter().find(|r| r.finished_at.is_none()).map(|r| r.id);
    let running = match newest_open {
        Some(_) => lock_held(stores.lock.as_ref()).await,
        None => false,
    };
    let shown_status = |r: &RunRecord| -> String {
        match r.finished_at {
            Some(_) => r.status.clone(),
            None if running && Some(r.id) == newest_open => "running".into(),
            None => "unfinished".into(),
        }
    };
    if json_out {
        let runs: Vec<Value> = runs
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.insert("status".into(), json!(shown_status(r)));
                }
                v
            })
            .collect();
        let doc = json!({ "database": stores.target, "watermark": watermark, "runs": runs });
        println!("{doc}");
        return exit::OK;
    }
    println!("database:  {}", stores.target);
    match &watermark {
        Some(w) => println!("watermark: {w} (the next incremental run reads leads modified since then, minus the overlap)"),
        None => println!("watermark: none yet (the next run is a full one)"),
    }
    if runs.is_empty() {
        println!("no runs recorded yet");
        return exit::OK;
    }
    println!(
        "{:<6} {:<19} {:<19} {:<18} {:<11} {:>8} {:>8} {:>7} {:>7} {:>8} {:>4}",
        "run",
        "started",
        "finished",
        "mode",
        "status",
        "read",
        "upserted",
        "deleted",
        "errors",
        "seconds",
        "exit"
    );
    for r in &runs {
        let t = |d: Option<chrono::NaiveDateTime>| {
            d.map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "{:<6} {:<19} {:<19} {:<18} {:<11} {:>8} {:>8} {:>7} {:>7} {:>8.1} {:>4}",
            r.id,
            t(r.started_at),
            t(r.finished_at),
            r.mode,
            shown_status(r),
            r.leads_read,
            r.leads_upserted,
            r.leads_deleted,
            r.error_rows,
            r.seconds,
            r.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
        );
        if let Some(m) = r
            .message
            .as_deref()
            .filter(|_| matches!(r.status.as_str(), "failed" | "refused"))
        {
            println!("       {m}");
        }
    }
    exit::OK
}

/// Whether another process holds the run lock now (taken and released at once when free).
async fn lock_held(lock: &dyn RunLock) -> bool {
    match lock.lock_run(Duration::ZERO).await {
        Ok(guard) => {
            let _ = guard.release().await;
            false
        }
        Err(StoreError::LockBusy { .. }) => true,
        Err(_) => false,
    }
}

/// One line of `doctor`'s report.
struct Verdict {
    ok: bool,
    warning: bool,
    check: String,
    detail: String,
    fix: String,
}

impl Verdict {
    fn ok(check: &str, detail: impl Into<String>) -> Verdict {
        Verdict {
            ok: true,
            warning: false,
            check: check.into(),
            detail: detail.into(),
            fix: String::new(),
        }
    }
    fn fail(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Verdict {
        Verdict {
            ok: false,
            warning: false,
            check: check.into(),
            detail: detail.into(),
            fix: fix.into(),
        }
    }
    fn warn(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Verdict {
        Verdict {
            ok: true,
            warning: true,
            check: check.into(),
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}

/// `b24sync doctor`: every check, one verdict each, non-zero exit when something is wrong.
pub async fn doctor_command(s: &Settings, client: Option<Result<Bitrix24Client, u8>>) -> u8 {
    let mut verdicts = Vec::new();
    match client {
        None => verdicts.push(Verdict::fail(
            "bitrix24",
            "no webhook and no OAuth client ID configured",
            "set B24SYNC_WEBHOOK (or --webhook), or authorize an OAuth app with `b24sync auth`",
        )),
        Some(Err(_)) => verdicts.push(Verdict::fail(
            "bitrix24",
            "the Bitrix24 settings are not usable (see the error above)",
            "fix the webhook URL or the OAuth settings",
        )),
        Some(Ok(client)) => bitrix_checks(&client, s, &mut verdicts).await,
    }
    match super::open_db_stores(&s.db, s.pool_size, super::DbOpen::MustExist).await {
        Err(e) => verdicts.push(Verdict::fail(
            "database",
            e.to_string(),
            "check --db / B24SYNC_DB: the path or connection string, the server, the login",
        )),
        Ok(stores) => {
            verdicts.push(Verdict::ok(
                "database",
                format!("{} is reachable", stores.target),
            ));
            match stores.schema.diagnose().await {
                Ok(list) => verdicts.extend(list.into_iter().map(|d| Verdict {
                    ok: d.ok,
                    warning: false,
                    check: d.check,
                    detail: d.detail,
                    fix: d.fix,
                })),
                Err(e) => verdicts.push(Verdict::fail(
                    "schema",
                    e.to_string(),
                    "run `b24sync init-db`",
                )),
            }
        }
    }
    let failed = verdicts.iter().filter(|v| !v.ok).count();
    for v in &verdicts {
        let tag = match (v.ok, v.warning) {
            (false, _) => "FAIL",
            (true, true) => "warn",
            (true, false) => "ok",
        };
        println!("{tag:<4} {:<15} {}", v.check, v.detail);
        if !v.fix.is_empty() && (!v.ok || v.warning) {
            println!("     {:<15} → {}", "", v.fix);
        }
    }
    if failed > 0 {
        println!("{failed} check(s) failed");
        exit::CHECKS_FAILED
    } else {
        match verdicts.iter().filter(|v| v.warning).count() {
            0 => println!("all checks passed"),
            n => println!("all checks passed, with {n} warning(s) above"),
        }
        exit::OK
    }
}

async fn bitrix_checks(client: &Bitrix24Client, s: &Settings, out: &mut Vec<Verdict>) {
    match portal::probe_leads(client).await {
        Ok(()) => out.push(Verdict::ok(
            "bitrix24",
            format!(
                "{} answers and may read leads (crm scope)",
                client.describe()
            ),
        )),
        Err(e) => {
            out.push(Verdict::fail("bitrix24", e.to_string(), refusal_fix(&e)));
            return;
        }
    }
    match portal::users::probe_users(client).await {
        Ok(()) => out.push(Verdict::ok("user scope", "user.get answers: operator names can be resolved")),
        Err(e @ ExtractError::Refused { .. }) => out.push(Verdict::warn(
            "user scope",
            format!("user.get refused: {e}"),
            "operator names need the user scope: tick Users (user) on the webhook; leads still load",
        )),
        Err(e) => out.push(Verdict::warn("user scope", e.to_string(), "")),
    }
    out.extend(entity_checks(client, &s.entities).await);
    out.push(clock_check(client).await);
    out.push(solution_field_check(client, s.solution_field.as_deref()).await);
}

/// Each configured entity (`--entities`): may the webhook read it? One request for all
/// (the sync's own first request, without the clock's use). A refused entity is a
/// warning: the sync skips it and syncs the others.
async fn entity_checks(client: &Bitrix24Client, entities: &[Entity]) -> Vec<Verdict> {
    let filters: Vec<ExportFilter> = entities.iter().map(|e| ExportFilter::of(*e)).collect();
    let ask = portal::PreludeAsk {
        solution_field: None,
        entities: filters
            .iter()
            .map(|filter| portal::EntityAsk {
                filter,
                all_ids: false,
            })
            .collect(),
    };
    let answers = match portal::prelude(client, ask).await {
        Ok(p) => p.entities,
        Err(e) => return vec![Verdict::fail("entities", e.to_string(), "")],
    };
    entities
        .iter()
        .zip(answers)
        .map(|(e, answer)| {
            let check = e.plural;
            match answer {
                portal::EntityExtents::Readable { extent, .. } if extent.max_id == 0 => {
                    Verdict::ok(
                        check,
                        format!("{} answers: none on the portal yet", e.method_name("list")),
                    )
                }
                portal::EntityExtents::Readable { extent, .. } => Verdict::ok(
                    check,
                    format!(
                        "{} answers (highest ID {}): synced into {}",
                        e.method_name("list"),
                        extent.max_id,
                        e.table
                    ),
                ),
                portal::EntityExtents::NoAccess { refusal } => Verdict::warn(
                    check,
                    format!(
                        "{} refused: {refusal}; a sync skips {check}",
                        e.method_name("list")
                    ),
                    format!(
                        "give the webhook's user the right to read {check} in Bitrix24 (CRM → \
                         Settings → Access permissions), or leave them out with --entities"
                    ),
                ),
            }
        })
        .collect()
}

/// The portal's clock against this machine's.
async fn clock_check(client: &Bitrix24Client) -> Verdict {
    let p = match portal::server_time(client).await {
        Ok(p) => p,
        Err(e) => return Verdict::warn("clock", e.to_string(), ""),
    };
    let local = chrono::Local::now();
    let skew = (p.timestamp() - local.timestamp()).abs();
    let detail = format!(
        "portal time {} (UTC{}), this machine {} (UTC{}); watermarks use the portal's clock only",
        p.format("%Y-%m-%d %H:%M:%S"),
        p.offset(),
        local.format("%Y-%m-%d %H:%M:%S"),
        local.offset()
    );
    if skew > 300 {
        Verdict::warn(
            "clock",
            format!("{detail}; the clocks differ by {skew} s"),
            "sync NTP on this machine (b24sync's own stamps use this clock)",
        )
    } else {
        Verdict::ok("clock", detail)
    }
}

/// The configured solution field; when none is set, a warning naming the portal's list
/// fields of leads by code and name, so the DBA can pick one.
async fn solution_field_check(client: &Bitrix24Client, field: Option<&str>) -> Verdict {
    const CHECK: &str = "solution field";
    match portal::check_solution_field(client, field).await {
        Ok(SolutionFieldCheck::List { field, values }) => Verdict::ok(
            CHECK,
            format!("{field} is a list field with {values} values"),
        ),
        Ok(SolutionFieldCheck::Missing { field }) => Verdict::fail(
            CHECK,
            format!("{field} does not exist on the portal"),
            "set --solution-field to the UF_CRM_... code of the list field (CRM → Settings → Custom fields → Leads)",
        ),
        Ok(SolutionFieldCheck::NotAList { field, kind }) => Verdict::fail(
            CHECK,
            format!(
                "{field} is of type {}, not a list",
                if kind.is_empty() { "?" } else { &kind }
            ),
            "choose a list (enumeration) field",
        ),
        Ok(SolutionFieldCheck::NotSet { list_fields }) => {
            let listed = if list_fields.is_empty() {
                "the portal has no list fields of leads".to_string()
            } else {
                let named: Vec<String> = list_fields
                    .iter()
                    .map(|(code, name)| match name {
                        Some(name) => format!("{code} ({name})"),
                        None => code.clone(),
                    })
                    .collect();
                format!("the portal's list fields of leads: {}", named.join(", "))
            };
            not_set(listed)
        }
        Err(e) if field.is_none() => not_set(format!("could not list the portal's fields: {e}")),
        Err(e) => Verdict::fail(CHECK, e.to_string(), refusal_fix(&e)),
    }
}

/// No solution field configured: a warning, with what the portal offers.
fn not_set(listed: String) -> Verdict {
    Verdict::warn(
        "solution field",
        format!("none set: bitrix_lead_solution stays empty; {listed}"),
        "set --solution-field / B24SYNC_SOLUTION_FIELD to the UF_CRM_... code of the leads' list field \
         (CRM → Settings → Custom fields → Leads, or the REST method crm.lead.userfield.list)",
    )
}

fn refusal_fix(e: &ExtractError) -> String {
    match e {
        ExtractError::Refused { hint, .. } => hint.clone(),
        ExtractError::Unreachable { .. } => "check the network and the portal address".into(),
        _ => String::new(),
    }
}

/// One setting of the TOML file, for `config example`.
struct SettingDoc {
    key: &'static str,
    env: &'static str,
    example: &'static str,
    help: &'static str,
}

const SETTINGS: &[SettingDoc] = &[
    SettingDoc { key: "webhook", env: "B24SYNC_WEBHOOK", example: "\"https://yourcompany.bitrix24.ru/rest/1/SECRET/\"", help: "Inbound webhook URL (crm scope; user scope for operator names). A password: keep this file private." },
    SettingDoc { key: "client_id", env: "B24SYNC_CLIENT_ID", example: "\"local.0123456789abcd.12345678\"", help: "OAuth application mode instead of the webhook (run `b24sync auth` once). Do not set both." },
    SettingDoc { key: "oauth_server", env: "B24SYNC_OAUTH_SERVER", example: "\"https://oauth.bitrix.info\"", help: "OAuth server for token refreshes (Russian region: https://oauth.bitrix24.tech)." },
    SettingDoc { key: "db", env: "B24SYNC_DB", example: "\"b24sync.db\"", help: "A file path (embedded SQLite) or a SQL Server connection string:\n# \"Server=tcp:sql1,1433;Database=oktell;User Id=b24sync;Password=...;TrustServerCertificate=true\"" },
    SettingDoc { key: "pool_size", env: "B24SYNC_POOL_SIZE", example: "4", help: "SQL Server connections." },
    SettingDoc { key: "solution_field", env: "B24SYNC_SOLUTION_FIELD", example: "\"UF_CRM_1712345678\"", help: "The list-type lead field copied into bitrix_lead_solution." },
    SettingDoc { key: "time_zone", env: "B24SYNC_TIME_ZONE", example: "\"portal\"", help: "Wall clock of the datetime columns: \"portal\", \"utc\" or a zone like \"Europe/Moscow\"." },
    SettingDoc { key: "paging", env: "B24SYNC_PAGING", example: "\"batch\"", help: "\"batch\" (2,500 leads per request) or \"next\" (50 per request)." },
    SettingDoc { key: "max_chains", env: "B24SYNC_MAX_CHAINS", example: "4", help: "Keyset chains an export may run at once, each over its own ID range (1 to 16; 1: one at a time)." },
    SettingDoc { key: "entities", env: "B24SYNC_ENTITIES", example: "[\"lead\", \"contact\", \"company\"]", help: "CRM entities to sync (the environment variable: lead,contact,company). One the webhook may not read is skipped with a warning." },
    SettingDoc { key: "rate", env: "B24SYNC_RATE", example: "2.0", help: "Requests per second the portal allows (Enterprise: 5)." },
    SettingDoc { key: "burst", env: "B24SYNC_BURST", example: "50", help: "Request burst the portal allows (Enterprise: 250)." },
    SettingDoc { key: "batch_size", env: "B24SYNC_BATCH_SIZE", example: "2500", help: "Leads per database transaction." },
    SettingDoc { key: "lock_wait", env: "B24SYNC_LOCK_WAIT", example: "60", help: "Seconds to wait for another run's lock before exiting with code 7." },
    SettingDoc { key: "overlap", env: "B24SYNC_OVERLAP", example: "\"5m\"", help: "How far before the last run's start an incremental run re-reads." },
    SettingDoc { key: "deletion_check_runs", env: "B24SYNC_DELETION_CHECK_RUNS", example: "12", help: "Look for leads deleted in Bitrix24 every N-th incremental run (full runs always look)." },
    SettingDoc { key: "deletion_check_every", env: "B24SYNC_DELETION_CHECK_EVERY", example: "\"1h\"", help: "... or when this long has passed since the last look." },
    SettingDoc { key: "phone_region", env: "B24SYNC_PHONE_REGION", example: "\"RU\"", help: "Country of phone numbers written without a country code (RU, BY, UA, KZ, ...)." },
    SettingDoc { key: "tail_digits", env: "B24SYNC_TAIL_DIGITS", example: "10", help: "Caller lookup fallback: match the last this many digits when a number cannot be normalised." },
    SettingDoc { key: "give_up_after", env: "B24SYNC_GIVE_UP_AFTER", example: "\"2m\"", help: "Give up on a portal that does not answer after this long in total, retries included (exit 5)." },
    SettingDoc { key: "max_delete_share", env: "B24SYNC_MAX_DELETE_SHARE", example: "0.2", help: "Refuse a deletion check that would remove more than this share of the leads." },
    SettingDoc { key: "listen", env: "B24SYNC_LISTEN", example: "\"127.0.0.1:8723\"", help: "serve: where the event endpoint listens (put a reverse proxy with TLS in front)." },
    SettingDoc { key: "application_token", env: "B24SYNC_APPLICATION_TOKEN", example: "\"token-of-the-outgoing-webhook\"", help: "serve: the application token Bitrix24 signs events with. A password: keep this file private." },
    SettingDoc { key: "reconcile_every", env: "B24SYNC_RECONCILE_EVERY", example: "\"5m\"", help: "serve: the incremental sync's interval, for events missed while it was down." },
    SettingDoc { key: "offline_poll", env: "B24SYNC_OFFLINE_POLL", example: "\"5s\"", help: "serve, OAuth apps: read the offline event queue this often." },
    SettingDoc { key: "max_attempts", env: "B24SYNC_MAX_ATTEMPTS", example: "10", help: "serve: failed attempts before a changed lead gets a row in bitrix_import_lead_error." },
    SettingDoc { key: "keep_token_fresh", env: "B24SYNC_KEEP_TOKEN_FRESH", example: "true", help: "serve, OAuth apps: renew the tokens shortly before they expire." },
];

/// A commented TOML file with every setting, its environment variable and an example.
pub fn config_example() -> String {
    let mut out = String::from(
        "# b24sync settings. Precedence: command-line flags, then environment variables,\n\
         # then this file. Unknown keys are an error. Uncomment what you need.\n",
    );
    for s in SETTINGS {
        out.push('\n');
        for line in s.help.lines() {
            if line.starts_with('#') {
                out.push_str(line);
            } else {
                out.push_str("# ");
                out.push_str(line);
            }
            out.push('\n');
        }
        out.push_str(&format!(
            "# environment: {}\n# {} = {}\n",
            s.env, s.key, s.example
        ));
    }
    out
}

/// Build a client from the settings for `doctor`, without printing twice.
pub async fn doctor_client(s: &Settings) -> Option<Result<Bitrix24Client, u8>> {
    if s.webhook.is_none() && s.client_id.is_none() {
        return None;
    }
    let cancel = CancellationToken::new();
    let config = b24sync::extract::client::ClientConfig {
        max_attempts: 2,
        request_timeout: Duration::from_secs(20),
        ..Default::default()
    };
    Some(match &s.client_id {
        Some(_) => super::auth::oauth_client(s, cancel).await,
        None => super::client_with(s, cancel, config),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_names_every_setting_and_parses_when_uncommented() {
        let text = config_example();
        let uncommented: String = text
            .lines()
            .filter_map(|l| {
                l.strip_prefix("# ").filter(|rest| {
                    SETTINGS
                        .iter()
                        .any(|s| rest.starts_with(&format!("{} = ", s.key)))
                })
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed = super::super::settings::parse_file(&uncommented).expect("the example parses");
        let debug = format!("{parsed:?}");
        assert!(
            !debug.contains("None"),
            "every key of the file appears in the example: {debug}"
        );
        for s in SETTINGS {
            assert!(text.contains(s.env), "{}", s.env);
        }
    }
}

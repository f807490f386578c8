//! The hostile user's tests (issue 11, "Done when"): SIGKILLs at random moments, short or
//! empty pages anywhere in an export, and a portal that empties itself between runs. All
//! through the real `b24sync` binary, against the simulator over HTTP, into a SQLite file.
//! After every process: whenever its exit code or the run history says the run completed,
//! `bitrix_leads` and `bitrix_lead_contacts` must be exactly what the portal holds; a run
//! that could not read everything must fail and keep the watermark; and no process output
//! (and no table but `bitrix_oauth`) ever holds the webhook secret.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use b24sync::model::{ColumnKind, LEAD_COLUMNS};
use b24sync_simulator::{PageFault, PageFaultKind, Portal, Simulator, SimulatorConfig};
use common::*;
use serde_json::{json, Map, Value};

/// The webhook secret of every simulator here: it must never show.
const SECRET: &str = "h0stile0W3bhook0S3cret";

const WATERMARK: &str = "watermark.date_modify";

// ---- The process ----

/// How one b24sync process ended, with everything it printed.
struct Outcome {
    args: String,
    code: Option<i32>,
    /// Killed by the test (SIGKILL) rather than exiting by itself.
    killed: bool,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// Exit 0 or 3: the run says it read everything.
    fn says_complete(&self) -> bool {
        matches!(self.code, Some(0) | Some(3))
    }

    fn describe(&self) -> String {
        format!(
            "`b24sync {}`: exit {:?}{}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.code,
            if self.killed { " (SIGKILL)" } else { "" },
            self.stdout,
            self.stderr
        )
    }
}

/// Run `b24sync ARGS --db DB --webhook URL`; with `kill_after`, SIGKILL it then unless it
/// has ended by itself. Every process's output is checked for the secret (item 4).
async fn b24(args: &[&str], db: &Path, sim: &Simulator, kill_after: Option<Duration>) -> Outcome {
    let mut cmd = b24sync();
    cmd.args(args)
        .arg("--db")
        .arg(db)
        .arg("--webhook")
        .arg(sim.webhook_url())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("b24sync starts");
    let pid = child.id().expect("a pid");
    let wait = child.wait_with_output();
    tokio::pin!(wait);
    let limit = Duration::from_secs(120);
    let output = match kill_after {
        None => tokio::time::timeout(limit, &mut wait).await,
        Some(delay) => {
            tokio::select! {
                out = &mut wait => Ok(out),
                _ = tokio::time::sleep(delay) => {
                    // Not reaped yet, so the pid is still this child's (at worst a zombie).
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                    tokio::time::timeout(limit, &mut wait).await
                }
            }
        }
    }
    .expect("b24sync ends within two minutes")
    .expect("b24sync's output is readable");
    #[cfg(unix)]
    let killed = {
        use std::os::unix::process::ExitStatusExt;
        output.status.signal() == Some(9)
    };
    #[cfg(not(unix))]
    let killed = false;
    let outcome = Outcome {
        args: args.join(" "),
        code: output.status.code(),
        killed,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !outcome.stdout.contains(SECRET) && !outcome.stderr.contains(SECRET),
        "the webhook secret was shown: {}",
        outcome.describe()
    );
    outcome
}

// ---- What the portal holds, what the database holds ----

/// Per lead ID: the stored title, and its contact values (TYPE_ID, ID, VALUE_TYPE, VALUE).
type Snapshot = BTreeMap<i64, (Option<String>, Vec<ContactTuple>)>;

fn title_chars() -> usize {
    match LEAD_COLUMNS
        .iter()
        .find(|c| c.field == "TITLE")
        .map(|c| c.kind)
    {
        Some(ColumnKind::Text { max_chars }) => max_chars,
        other => panic!("TITLE is not a text column: {other:?}"),
    }
}

/// A title as `bitrix_leads.sql_TITLE` holds it: cut to the column's UTF-16 length.
fn stored_title(raw: Option<String>) -> Option<String> {
    let max = title_chars();
    raw.map(|t| {
        let mut used = 0;
        t.chars()
            .take_while(|c| {
                used += c.len_utf16();
                used <= max
            })
            .collect()
    })
}

fn lead_id(lead: &Value) -> i64 {
    text_field(lead, "ID")
        .and_then(|s| s.parse().ok())
        .expect("a numeric lead ID")
}

fn portal_snapshot(portal: &Portal) -> Snapshot {
    portal
        .leads()
        .iter()
        .map(|lead| {
            (
                lead_id(lead),
                (
                    stored_title(text_field(lead, "TITLE")),
                    expected_contacts(lead),
                ),
            )
        })
        .collect()
}

/// Rows of a query, or `None` when the file or the table is not there (yet).
fn try_rows(db: &Path, sql: &str) -> Option<Vec<Vec<Option<String>>>> {
    if !db.exists() {
        return None;
    }
    // Never create the file: a process killed before it did must leave none.
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .ok()?;
    let mut stmt = conn.prepare(sql).ok()?;
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get::<_, rusqlite::types::Value>(i)? {
                        rusqlite::types::Value::Null => None,
                        rusqlite::types::Value::Integer(v) => Some(v.to_string()),
                        rusqlite::types::Value::Real(v) => Some(v.to_string()),
                        rusqlite::types::Value::Text(s) => Some(s),
                        rusqlite::types::Value::Blob(_) => Some("<blob>".into()),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .ok()?
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some(rows)
}

fn db_snapshot(db: &Path) -> Snapshot {
    let mut snap = Snapshot::new();
    for row in try_rows(db, "SELECT sql_ID, sql_TITLE FROM bitrix_leads").unwrap_or_default() {
        let id = row[0].as_deref().and_then(|s| s.parse().ok()).unwrap_or(-1);
        snap.insert(id, (row[1].clone(), Vec::new()));
    }
    let contacts = try_rows(
        db,
        "SELECT sql_LEAD_ID, sql_TYPE_ID, sql_CONTACT_ID, sql_VALUE_TYPE, sql_VALUE FROM bitrix_lead_contacts",
    )
    .unwrap_or_default();
    for row in contacts {
        let id = row[0].as_deref().and_then(|s| s.parse().ok()).unwrap_or(-1);
        let entry = snap
            .entry(id)
            .or_insert_with(|| (Some("<contacts without a bitrix_leads row>".into()), vec![]));
        entry.1.push((
            row[1].clone().unwrap_or_default(),
            row[2].clone(),
            row[3].clone(),
            row[4].clone(),
        ));
    }
    for (_, contacts) in snap.values_mut() {
        contacts.sort();
    }
    snap
}

/// What differs, in a few lines (empty: equal).
fn differences(portal: &Snapshot, db: &Snapshot) -> String {
    let missing: Vec<_> = portal.keys().filter(|k| !db.contains_key(k)).collect();
    let extra: Vec<_> = db.keys().filter(|k| !portal.contains_key(k)).collect();
    let changed: Vec<_> = portal
        .iter()
        .filter_map(|(id, p)| db.get(id).filter(|d| *d != p).map(|d| (id, p, d)))
        .collect();
    let mut out = String::new();
    if !missing.is_empty() {
        out += &format!(
            "{} leads missing from the database, e.g. {:?}; ",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
    }
    if !extra.is_empty() {
        out += &format!(
            "{} leads in the database but not on the portal, e.g. {:?}; ",
            extra.len(),
            &extra[..extra.len().min(5)]
        );
    }
    for (id, p, d) in changed.iter().take(3) {
        out += &format!("lead {id}: portal {p:?}, database {d:?}; ");
    }
    if changed.len() > 3 {
        out += &format!("{} leads differ in all; ", changed.len());
    }
    out
}

/// The database's leads and contact values are exactly the portal's.
fn assert_equals_portal(db: &Path, sim: &Simulator, context: &str) {
    let diff = differences(&portal_snapshot(&sim.portal()), &db_snapshot(db));
    assert!(diff.is_empty(), "{context}: {diff}");
}

/// Lead IDs or (lead, contact value) pairs stored twice.
fn assert_no_duplicates(db: &Path, context: &str) {
    let leads = try_rows(
        db,
        "SELECT sql_ID, COUNT(*) FROM bitrix_leads GROUP BY sql_ID HAVING COUNT(*) > 1 LIMIT 5",
    )
    .unwrap_or_default();
    let contacts = try_rows(
        db,
        "SELECT sql_LEAD_ID, sql_CONTACT_ID, COUNT(*) FROM bitrix_lead_contacts \
         GROUP BY sql_LEAD_ID, sql_CONTACT_ID HAVING COUNT(*) > 1 LIMIT 5",
    )
    .unwrap_or_default();
    assert!(
        leads.is_empty() && contacts.is_empty(),
        "{context}: duplicated leads {leads:?}, duplicated contact values {contacts:?}"
    );
}

/// Contact values whose lead has no bitrix_leads row (a load or delete half done).
fn assert_no_orphans(db: &Path, context: &str) {
    let orphans = try_rows(
        db,
        "SELECT c.sql_LEAD_ID FROM bitrix_lead_contacts AS c \
         WHERE NOT EXISTS (SELECT 1 FROM bitrix_leads AS l WHERE l.sql_ID = c.sql_LEAD_ID) LIMIT 5",
    )
    .unwrap_or_default();
    assert!(
        orphans.is_empty(),
        "{context}: contact values without their lead: {orphans:?}"
    );
}

/// (status, exit_code) of the newest b24sync_runs row.
fn latest_run(db: &Path) -> Option<(String, Option<String>)> {
    try_rows(
        db,
        "SELECT status, exit_code FROM b24sync_runs ORDER BY Id DESC LIMIT 1",
    )?
    .into_iter()
    .next()
    .map(|r| (r[0].clone().unwrap_or_default(), r[1].clone()))
}

fn history_says_complete(db: &Path) -> bool {
    matches!(latest_run(db), Some((s, _)) if s == "ok" || s == "errors")
}

fn runs_in_history(db: &Path) -> usize {
    try_rows(db, "SELECT Id FROM b24sync_runs").map_or(0, |r| r.len())
}

fn state(db: &Path, key: &str) -> Option<String> {
    try_rows(
        db,
        &format!("SELECT value FROM b24sync_state WHERE name = '{key}'"),
    )?
    .into_iter()
    .next()
    .and_then(|r| r[0].clone())
}

/// No table but bitrix_oauth holds the secret (run messages, error rows, state).
fn assert_no_secret_in_tables(db: &Path) {
    let tables = try_rows(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'bitrix_oauth'",
    )
    .unwrap_or_default();
    for t in tables.into_iter().filter_map(|r| r[0].clone()) {
        let rows = try_rows(db, &format!("SELECT * FROM \"{t}\"")).unwrap_or_default();
        let hit = rows
            .iter()
            .flatten()
            .flatten()
            .find(|cell| cell.contains(SECRET));
        assert!(hit.is_none(), "table {t} holds the webhook secret: {hit:?}");
    }
}

/// A run that did not complete: non-zero, not 3, and the history does not say ok.
fn assert_failed_run(out: &Outcome, db: &Path, context: &str) {
    assert!(
        !out.killed && !out.says_complete() && out.code.is_some(),
        "{context}: expected a failed run, got {}",
        out.describe()
    );
    let latest = latest_run(db);
    assert!(
        !history_says_complete(db),
        "{context}: the run history says {latest:?} for {}",
        out.describe()
    );
}

// ---- Pseudo-random choices, reproducible from a seed ----

struct Rng(u64);

impl Rng {
    /// splitmix64.
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick(&mut self, ids: &[i64]) -> i64 {
        ids[self.below(ids.len() as u64) as usize]
    }
}

fn hostile_config(leads: usize, id_step: u32) -> SimulatorConfig {
    SimulatorConfig {
        leads,
        id_step,
        webhook_secret: SECRET.to_string(),
        ..SimulatorConfig::default()
    }
}

/// Uneven gaps: generated with `id_step`, then every `every`-th lead deleted.
async fn sparse_simulator(config: SimulatorConfig, every: usize) -> Simulator {
    let sim = Simulator::start(config).await.expect("simulator starts");
    let portal = sim.portal();
    for (i, id) in portal.lead_ids().into_iter().enumerate() {
        if i % every == every - 1 {
            assert!(portal.delete_lead(id));
        }
    }
    sim
}

fn lead_fields(title: &str, phone: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("TITLE".into(), json!(title));
    m.insert(
        "PHONE".into(),
        json!([{"VALUE_TYPE": "WORK", "VALUE": phone}]),
    );
    m
}

/// Some of what managers do between two syncs: new leads, renamed ones, phones removed and
/// added, leads deleted. Returns what it did.
fn edit_portal(portal: &Portal, rng: &mut Rng, round: usize) -> String {
    let mut done = Vec::new();
    for k in 0..rng.below(3) {
        let id = portal.add_lead(lead_fields(
            &format!("Новый лид {round}.{k}"),
            &format!("+7 912 {:03}-{:02}-{:02}", round, k, rng.below(100)),
        ));
        done.push(format!("added {id}"));
    }
    let ids = portal.lead_ids();
    for _ in 0..3 {
        let id = rng.pick(&ids);
        portal.update_lead(id, |l| {
            l.insert(
                "TITLE".into(),
                json!(format!("Переименован в раунде {round}")),
            );
        });
        done.push(format!("renamed {id}"));
    }
    let id = rng.pick(&ids);
    portal.update_lead(id, |l| {
        l.remove("PHONE");
    });
    done.push(format!("phones of {id} removed"));
    let id = rng.pick(&ids);
    let phone = format!("+7 495 {:03}-{:04}", round, rng.below(10_000));
    portal.update_lead(id, |l| {
        let mut phones = l
            .get("PHONE")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        phones.push(json!({"VALUE_TYPE": "MOBILE", "VALUE": phone}));
        l.insert("PHONE".into(), Value::Array(phones));
    });
    done.push(format!("phone added to {id}"));
    // Never the highest ID: add_lead would give it out again, which Bitrix24 never does.
    let top = ids.last().copied();
    for _ in 0..=rng.below(2) {
        let id = rng.pick(&ids);
        if Some(id) != top && portal.delete_lead(id) {
            done.push(format!("deleted {id}"));
        }
    }
    done.join(", ")
}

// ---- 1. SIGKILL at random moments ----

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_never_leaves_a_run_that_says_ok_with_leads_missing() {
    const SEED: u64 = 0x5eed_0011;
    const ROUNDS: usize = 12;
    let sim = sparse_simulator(
        SimulatorConfig {
            latency: Duration::from_millis(120),
            ..hostile_config(3_000, 3)
        },
        7,
    )
    .await;
    let portal = sim.portal();
    let db = test_db();
    let mut rng = Rng(SEED);
    // Every incremental run checks deletions, so a run that completes must match exactly.
    // Debug logs: more output that must not hold the secret.
    let args = [
        "-v",
        "sync",
        "--solution-field",
        SOLUTION,
        "--batch-size",
        "300",
        "--deletion-check-runs",
        "1",
    ];
    let full: Vec<&str> = args.iter().copied().chain(["--full"]).collect();
    let started = Instant::now();
    let (mut kills, mut completed) = (0, 0);
    // The leads stored after the last run that completed: whatever a later run did or
    // did not finish, those the portal still has must still be there.
    let mut kept: std::collections::BTreeSet<i64> = Default::default();
    for round in 0..ROUNDS {
        // From "before the schema exists" to "after the last commit".
        let delay = Duration::from_millis(20 + rng.below(1_200));
        // Every third round runs to its end, so incremental runs come up too.
        let kill = (round % 3 != 2).then_some(delay);
        // Now and then a full run over a database that has a watermark.
        let run_args: &[&str] = if round % 4 == 3 { &full } else { &args };
        let t = Instant::now();
        // A run killed before it wrote its history row leaves the previous run's "ok" as the
        // latest row: only a row this round added speaks for this round.
        let runs_before = runs_in_history(&db.path);
        let out = b24(run_args, &db.path, &sim, kill).await;
        let took = t.elapsed();
        let latest = latest_run(&db.path);
        let rows = db_snapshot(&db.path).len();
        println!(
            "seed {SEED:#x} round {round} ({}): kill after {} → {} after {} ms, {rows} leads stored, latest run {latest:?}",
            out.args,
            kill.map_or("-".to_string(), |d| format!("{} ms", d.as_millis())),
            if out.killed {
                "killed".to_string()
            } else {
                format!("exit {:?}", out.code)
            },
            took.as_millis()
        );
        let context = format!("seed {SEED:#x}, round {round}, kill after {kill:?}");
        assert!(
            out.killed || out.says_complete(),
            "{context}: neither killed nor complete: {}",
            out.describe()
        );
        assert_no_duplicates(&db.path, &context);
        assert_no_orphans(&db.path, &context);
        let stored = db_snapshot(&db.path);
        let on_portal: std::collections::BTreeSet<i64> = portal.lead_ids().into_iter().collect();
        let lost: Vec<_> = kept
            .intersection(&on_portal)
            .filter(|id| !stored.contains_key(id))
            .take(5)
            .collect();
        assert!(
            lost.is_empty(),
            "{context}: leads lost from the table: {lost:?}"
        );
        if out.killed {
            kills += 1;
        } else {
            completed += 1;
        }
        let this_round_said_ok =
            runs_in_history(&db.path) > runs_before && history_says_complete(&db.path);
        if out.says_complete() || this_round_said_ok {
            assert_equals_portal(
                &db.path,
                &sim,
                &format!("{context}: the run said it completed ({latest:?})"),
            );
            kept = stored.keys().copied().collect();
        }
        if round % 4 != 1 {
            let edits = edit_portal(&portal, &mut rng, round);
            println!("  portal edits: {edits}");
        }
    }
    println!(
        "{kills} kills, {completed} runs completed, in {:?}",
        started.elapsed()
    );
    assert!(kills >= 3, "too few kills to test anything: {kills}");

    let out = b24(&args, &db.path, &sim, None).await;
    assert!(out.says_complete(), "the clean run: {}", out.describe());
    assert!(history_says_complete(&db.path));
    assert_no_duplicates(&db.path, "after the clean run");
    assert_no_orphans(&db.path, "after the clean run");
    assert_equals_portal(&db.path, &sim, "after the clean run");
    assert_no_secret_in_tables(&db.path);
}

// ---- 2. Short or empty pages anywhere in an export ----

/// Where in the export a page goes wrong.
struct Position {
    name: &'static str,
    /// The `>ID` the page starts after.
    after: i64,
    /// Whether the page is chained to an earlier one in its batch.
    chained: bool,
    /// `--paging`.
    paging: &'static str,
}

fn positions(ids: &[i64]) -> Vec<Position> {
    let page = b24sync::extract::paging::PAGE_SIZE;
    let last_page = (ids.len() - 1) / page;
    vec![
        Position {
            name: "the first page",
            after: 0,
            chained: false,
            paging: "batch",
        },
        Position {
            name: "a chained page in the middle",
            after: ids[page * 24 - 1],
            chained: true,
            paging: "batch",
        },
        Position {
            name: "the last page",
            after: ids[page * last_page - 1],
            chained: false,
            paging: "batch",
        },
        Position {
            name: "a page in the middle, one page per request",
            after: ids[page * 24 - 1],
            chained: false,
            paging: "next",
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_or_empty_pages_anywhere_are_re_read_or_fail_the_run() {
    let started = Instant::now();
    // The sparse IDs fix where each page starts; learn them from a throw-away portal.
    let config = SimulatorConfig {
        rate_limit: None,
        ..hostile_config(3_000, 2)
    };
    let probe = sparse_simulator(config.clone(), 9).await;
    let ids = probe.portal().lead_ids();
    drop(probe);
    assert!(ids.len() > 2_500, "two batches of pages");
    for pos in positions(&ids) {
        // JSON logs here (text elsewhere): the secret must not show in either.
        let args = [
            "--log-format",
            "json",
            "sync",
            "--solution-field",
            SOLUTION,
            "--paging",
            pos.paging,
            "--rate",
            "1000",
            "--burst",
            "1000",
            // The positions are where one chain's pages start; the default's ranges start
            // elsewhere (their short pages: parallel_chains_give_the_tables_one_chain_gives).
            "--max-chains",
            "1",
        ];
        let with = |extra: &[&'static str]| -> Vec<&str> {
            args.iter().copied().chain(extra.iter().copied()).collect()
        };
        let full = with(&["--full"]);
        let check = with(&["--deletion-check-runs", "1"]);
        let sim = sparse_simulator(config.clone(), 9).await;
        assert_eq!(sim.portal().lead_ids(), ids);
        let portal = sim.portal();
        let db = test_db();
        let fault = |kind, times, chained_only| PageFault {
            from_id: pos.after,
            chained_only,
            kind,
            times,
        };
        let context = |step: &str| {
            format!(
                "{} (after {}, {} paging), {step}",
                pos.name, pos.after, pos.paging
            )
        };

        // Once empty: re-read, nothing lost.
        sim.inject_page_fault(fault(PageFaultKind::Empty, 1, pos.chained));
        let out = b24(&args, &db.path, &sim, None).await;
        assert_eq!(sim.stats().faults_served, 1, "{}", context("empty once"));
        assert!(out.says_complete(), "{}", out.describe());
        assert_equals_portal(&db.path, &sim, &context("empty once"));

        // Once cut short, in a full run after edits: nothing lost.
        let edited = ids[ids.len() - 3];
        assert!(portal.update_lead(edited, |l| {
            l.insert("TITLE".into(), json!("после короткой страницы"));
        }));
        sim.inject_page_fault(fault(PageFaultKind::Truncated { keep: 7 }, 1, pos.chained));
        let out = b24(&full, &db.path, &sim, None).await;
        assert_eq!(sim.stats().faults_served, 2, "{}", context("cut once"));
        assert!(out.says_complete(), "{}", out.describe());
        assert_equals_portal(&db.path, &sim, &context("cut once"));

        // Empty on every re-read: the run fails, keeps the watermark, deletes nothing.
        assert!(portal.update_lead(ids[5], |l| {
            l.insert("TITLE".into(), json!("не дочитан"));
        }));
        let watermark = state(&db.path, WATERMARK);
        assert!(watermark.is_some());
        let before = db_snapshot(&db.path);
        let history = runs_in_history(&db.path);
        sim.inject_page_fault(fault(PageFaultKind::Empty, 100_000, false));
        let out = b24(&full, &db.path, &sim, None).await;
        assert!(sim.stats().faults_served > 3, "{}", context("empty always"));
        assert_failed_run(&out, &db.path, &context("empty always, full"));
        assert_eq!(runs_in_history(&db.path), history + 1);
        assert_eq!(
            state(&db.path, WATERMARK),
            watermark,
            "{}",
            context("the watermark moved")
        );
        assert_eq!(
            db_snapshot(&db.path).keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>(),
            "{}",
            context("leads deleted or added by a failed full run")
        );
        // The same for an incremental run whose deletion check meets the page.
        let out = b24(&check, &db.path, &sim, None).await;
        assert_failed_run(&out, &db.path, &context("empty always, deletion check"));
        assert_eq!(state(&db.path, WATERMARK), watermark);
        assert_eq!(
            db_snapshot(&db.path).keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>(),
            "{}",
            context("leads deleted by a failed deletion check")
        );
        assert_no_duplicates(&db.path, &context("at the end"));
        assert_no_secret_in_tables(&db.path);
    }
    println!("short pages: {:?}", started.elapsed());
}

// ---- 3. A portal that empties itself between runs ----

/// 400 leads, every third with an impossible birth date (a third of the table has error
/// rows, more than the deletion guard's 20 %), synced in full.
async fn synced_portal_with_error_rows() -> (Simulator, TestDb, Vec<i64>) {
    let sim = Simulator::start(hostile_config(400, 2))
        .await
        .expect("simulator starts");
    let portal = sim.portal();
    let ids = portal.lead_ids();
    let broken: Vec<i64> = ids.iter().copied().step_by(3).collect();
    for id in &broken {
        assert!(portal.set_field_raw(*id, "BIRTHDATE", json!("31.02.1990")));
    }
    let db = test_db();
    let out = b24(
        &["sync", "--solution-field", SOLUTION],
        &db.path,
        &sim,
        None,
    )
    .await;
    assert_eq!(out.code, Some(3), "{}", out.describe());
    assert_equals_portal(&db.path, &sim, "the first full sync");
    let error_leads = try_rows(
        &db.path,
        "SELECT DISTINCT sql_ID FROM bitrix_import_lead_error",
    )
    .unwrap()
    .len();
    assert!(
        error_leads >= broken.len(),
        "{error_leads} leads with error rows"
    );
    (sim, db, ids)
}

/// The portal deletes all but three leads (none of them with an error row).
fn empty_the_portal(portal: &Portal, ids: &[i64], db: &Path) {
    let with_errors: Vec<i64> =
        try_rows(db, "SELECT DISTINCT sql_ID FROM bitrix_import_lead_error")
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r[0].as_deref().and_then(|s| s.parse().ok()))
            .collect();
    let keep: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !with_errors.contains(id))
        .take(3)
        .collect();
    for id in ids {
        if !keep.contains(id) {
            assert!(portal.delete_lead(*id));
        }
    }
    assert_eq!(portal.lead_ids().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_that_empties_itself_trips_the_guard_and_keeps_every_lead() {
    let (sim, db, ids) = synced_portal_with_error_rows().await;
    let before = db_snapshot(&db.path);
    assert_eq!(before.len(), ids.len());
    empty_the_portal(&sim.portal(), &ids, &db.path);
    for args in [
        vec![
            "sync",
            "--deletion-check-runs",
            "1",
            "--solution-field",
            SOLUTION,
        ],
        vec!["sync", "--full", "--solution-field", SOLUTION],
    ] {
        let out = b24(&args, &db.path, &sim, None).await;
        assert_eq!(out.code, Some(9), "{}", out.describe());
        assert_failed_run(&out, &db.path, &args.join(" "));
        assert_eq!(
            latest_run(&db.path).and_then(|r| r.1).as_deref(),
            Some("9"),
            "the history names the guard"
        );
        let after = db_snapshot(&db.path);
        assert_eq!(after.len(), ids.len(), "{}: leads deleted", args.join(" "));
        assert_eq!(after, before, "{}: stored leads changed", args.join(" "));
    }
    assert_no_secret_in_tables(&db.path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_whose_lists_come_back_empty_fails_the_run_and_keeps_every_lead() {
    // What a webhook that lost its CRM permission may see: the highest IDs still answer,
    // every page of the listing is empty.
    let (sim, db, ids) = synced_portal_with_error_rows().await;
    let before = db_snapshot(&db.path);
    let watermark = state(&db.path, WATERMARK);
    sim.inject_page_fault(PageFault {
        from_id: 0,
        chained_only: false,
        kind: PageFaultKind::Empty,
        times: 1_000_000,
    });
    for args in [
        vec![
            "sync",
            "--deletion-check-runs",
            "1",
            "--solution-field",
            SOLUTION,
        ],
        vec!["sync", "--full", "--solution-field", SOLUTION],
    ] {
        let out = b24(&args, &db.path, &sim, None).await;
        assert_failed_run(&out, &db.path, &args.join(" "));
        assert_eq!(state(&db.path, WATERMARK), watermark, "{}", args.join(" "));
        let after = db_snapshot(&db.path);
        assert_eq!(after.len(), ids.len(), "{}: leads deleted", args.join(" "));
        assert_eq!(after, before, "{}: stored leads changed", args.join(" "));
    }
    assert!(sim.stats().faults_served > 0);
    assert_no_secret_in_tables(&db.path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_retry_against_an_emptied_portal_deletes_nothing() {
    let (sim, db, ids) = synced_portal_with_error_rows().await;
    let before = db_snapshot(&db.path);
    let history = try_rows(&db.path, "SELECT * FROM b24sync_runs").unwrap();
    empty_the_portal(&sim.portal(), &ids, &db.path);
    let out = b24(
        &["errors", "retry", "--solution-field", SOLUTION],
        &db.path,
        &sim,
        None,
    )
    .await;
    assert!(
        !out.killed && out.code.is_some_and(|c| c != 0 && c != 3),
        "a third of the leads would go: {}",
        out.describe()
    );
    let after = db_snapshot(&db.path);
    assert_eq!(after.len(), ids.len(), "leads deleted: {}", out.describe());
    assert_eq!(after, before, "stored leads changed");
    // A retry that wrote history must not have written "ok".
    let now = try_rows(&db.path, "SELECT * FROM b24sync_runs").unwrap();
    if now != history {
        assert_failed_run(&out, &db.path, "errors retry");
    }
    assert_no_secret_in_tables(&db.path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_page_among_the_changed_leads_of_an_incremental_run() {
    let sim = sparse_simulator(
        SimulatorConfig {
            rate_limit: None,
            ..hostile_config(900, 3)
        },
        5,
    )
    .await;
    let portal = sim.portal();
    let db = test_db();
    let args = ["sync", "--solution-field", SOLUTION];
    let out = b24(&args, &db.path, &sim, None).await;
    assert!(out.says_complete(), "{}", out.describe());
    let ids = portal.lead_ids();
    // 240 changed leads: five pages of an incremental run.
    let edit = |round: &str| -> Vec<i64> {
        let changed: Vec<i64> = ids.iter().copied().step_by(3).collect();
        for id in &changed {
            assert!(portal.update_lead(*id, |l| {
                l.insert("TITLE".into(), json!(format!("{round} {id}")));
            }));
        }
        changed
    };
    let changed = edit("первая правка");
    assert!(changed.len() > 200);
    let fault = |kind, times, chained_only| PageFault {
        from_id: changed[99],
        chained_only,
        kind,
        times,
    };
    sim.inject_page_fault(fault(PageFaultKind::Empty, 1, true));
    let out = b24(&args, &db.path, &sim, None).await;
    assert!(out.says_complete(), "{}", out.describe());
    assert_eq!(sim.stats().faults_served, 1);
    assert_equals_portal(&db.path, &sim, "an empty page in an incremental run");

    sim.inject_page_fault(fault(PageFaultKind::Truncated { keep: 3 }, 1, true));
    edit("вторая правка");
    let out = b24(&args, &db.path, &sim, None).await;
    assert!(out.says_complete(), "{}", out.describe());
    assert_eq!(sim.stats().faults_served, 2);
    assert_equals_portal(&db.path, &sim, "a cut page in an incremental run");

    // For good: the run fails and the watermark stays, so the next run reads these edits.
    edit("третья правка");
    let watermark = state(&db.path, WATERMARK);
    sim.inject_page_fault(fault(PageFaultKind::Empty, 100_000, false));
    let out = b24(&args, &db.path, &sim, None).await;
    assert_failed_run(&out, &db.path, "an incremental run that cannot read on");
    assert_eq!(state(&db.path, WATERMARK), watermark, "the watermark moved");
    assert_no_duplicates(&db.path, "incremental");
    assert_no_secret_in_tables(&db.path);
}

// ---- 4. Parallel chains (--max-chains) ----

/// An export read by several chains at once gives the same tables as one chain: a full run
/// over sparse IDs, then edits, additions and deletions read back by an incremental run
/// with its deletion check, and a short page in one of the ranges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_chains_give_the_tables_one_chain_gives() {
    let sim = sparse_simulator(hostile_config(12_000, 4), 5).await;
    let portal = sim.portal();
    let db = test_db();
    let args = [
        "sync",
        "--solution-field",
        SOLUTION,
        "--max-chains",
        "4",
        "--deletion-check-runs",
        "1",
    ];
    let verbose: Vec<&str> = ["-v"].into_iter().chain(args).collect();
    let out = b24(&verbose, &db.path, &sim, None).await;
    assert!(out.says_complete(), "{}", out.describe());
    assert!(
        out.stderr.contains("9600 leads read, 9600 loaded"),
        "{}",
        out.describe()
    );
    // The export did run its chains side by side (the debug log says how many).
    assert!(
        out.stderr.contains("parallel export") && out.stderr.contains("workers=4"),
        "{}",
        out.describe()
    );
    assert_no_duplicates(&db.path, "parallel full run");
    assert_no_orphans(&db.path, "parallel full run");
    assert_equals_portal(&db.path, &sim, "parallel full run");

    let mut rng = Rng(0x5eed_0012);
    let edits = edit_portal(&portal, &mut rng, 1);
    let ids = portal.lead_ids();
    // A short page somewhere in the upper half of the IDs: whichever range reads it re-reads.
    sim.inject_page_fault(PageFault {
        from_id: ids[ids.len() * 3 / 4],
        chained_only: false,
        kind: PageFaultKind::Truncated { keep: 7 },
        times: 1,
    });
    let full: Vec<&str> = args.iter().copied().chain(["--full"]).collect();
    let out = b24(&full, &db.path, &sim, None).await;
    assert!(out.says_complete(), "after {edits}: {}", out.describe());
    assert_eq!(sim.stats().faults_served, 1, "the short page was served");
    assert_no_duplicates(&db.path, "parallel run with a short page");
    assert_equals_portal(&db.path, &sim, "parallel run with a short page");

    let edits = edit_portal(&portal, &mut rng, 2);
    let out = b24(&args, &db.path, &sim, None).await;
    assert!(out.says_complete(), "after {edits}: {}", out.describe());
    assert_equals_portal(&db.path, &sim, "parallel incremental run");
}

#[tokio::test]
async fn max_chains_out_of_range_is_refused_naming_the_value() {
    let sim = Simulator::start(hostile_config(10, 1))
        .await
        .expect("simulator starts");
    let db = test_db();
    for bad in ["0", "17", "-3"] {
        let out = b24(&["sync", "--max-chains", bad], &db.path, &sim, None).await;
        assert_eq!(out.code, Some(2), "{}", out.describe());
        assert!(
            out.stderr.contains("--max-chains") && out.stderr.contains(&format!("got {bad}")),
            "{}",
            out.describe()
        );
    }
    assert_eq!(
        sim.stats().http_requests,
        0,
        "nothing was asked of Bitrix24"
    );
}

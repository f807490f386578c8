//! The README's commands, run as written (issue 16: "the README's commands are run by a test
//! or `.ci/run` as written").
//!
//! The test reads README.md and docs/*.md, takes every `b24sync ...` invocation out of their
//! fenced code blocks (shell lines, and the cron / systemd / Task Scheduler / SQL Server Agent
//! lines, from which the invocation is cut out) and out of the README's inline code spans, and
//! runs each with the real binary against the in-process simulator and SQLite files in a temp
//! directory, in the order a user would (sync before lookup and errors). What the README
//! leaves to the reader is filled in: its placeholder webhook becomes the simulator's URL, its
//! example solution field the simulator's list field, and its file paths (`leads.db`,
//! `/var/lib/b24sync/leads.db`, `C:\b24sync\b24sync.toml`) paths in the temp directory.
//!
//! A reader follows the README in one shell: `export` lines stay in force for what comes
//! later (except in a block that is skipped as a whole: that is the other path, SQL Server).
//! Commands for a scheduler (an absolute path to the binary) get only their own environment:
//! the assignments in front of them, or the systemd unit's `EnvironmentFile`.
//!
//! Commands this machine cannot run are on [`SKIP`] / [`SKIP_BLOCKS`] with the reason. A
//! command that is neither run nor skipped cannot exist: every command found is run unless a
//! skip entry names it, and a skip entry that names nothing fails the test, so the list stays
//! honest in both directions.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use b24sync_simulator::{Simulator, SimulatorConfig};
use common::*;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Commands not run here, by file and text as written (the whole line of a code block, or the
/// inline code span), with the reason.
const SKIP: &[(&str, &str, &str)] = &[
    (
        "README.md",
        "cargo run --release -- demo",
        ".ci/run runs it as written (and checks its summary line)",
    ),
    (
        "README.md",
        "b24sync demo",
        "the demo again, named in the exit-code table; .ci/run runs it as written",
    ),
    (
        "README.md",
        "B24SYNC_CLIENT_SECRET=... b24sync auth --client-id local.xxx --portal acme.bitrix24.ru --db leads.db",
        "the OAuth browser flow (a person opens the printed address and approves the app)",
    ),
    (
        "README.md",
        "b24sync auth --client-id ... --portal ...",
        "the OAuth browser flow; `...` are placeholders",
    ),
    (
        "README.md",
        "b24sync auth",
        "the OAuth browser flow",
    ),
    (
        "README.md",
        "b24sync sync --client-id local.xxx --db leads.db",
        "OAuth mode: needs the tokens `auth` stores, which needs the browser flow",
    ),
    (
        "README.md",
        "b24sync token refresh",
        "OAuth mode only (a webhook database has no tokens to refresh: exit 2 by design)",
    ),
    (
        "README.md",
        "b24sync events bind --client-id local.xxx --handler https://b24sync.yourcompany.example/ --db leads.db",
        "OAuth mode: needs the tokens `auth` stores (tests/serve.rs binds with an app in-process)",
    ),
    (
        "README.md",
        "b24sync events bind --client-id local.xxx --offline --db leads.db",
        "OAuth mode (tests/serve.rs runs events bind --offline with an app authorized in-process)",
    ),
    (
        "README.md",
        "b24sync events status --client-id local.xxx --db leads.db",
        "OAuth mode (tests/serve.rs runs events status)",
    ),
    (
        "README.md",
        "b24sync serve --client-id local.xxx --offline-poll 5s --keep-token-fresh --db leads.db",
        "OAuth mode (tests/serve.rs runs serve --client-id --offline-poll)",
    ),
    (
        "README.md",
        "b24sync events unbind",
        "OAuth mode; named in the text",
    ),
    (
        "docs/caller-lookup.md",
        "b24sync lookup '+375 29 123-45-67' --json --db 'Server=tcp:sql1,1433;Database=oktell;...'",
        "needs a SQL Server (the same lookup runs from the README against SQLite)",
    ),
];

/// Code blocks not run as a whole: (file, a line of the block, reason).
const SKIP_BLOCKS: &[(&str, &str, &str)] = &[
    (
        "README.md",
        "export B24SYNC_DB='Server=tcp:sql01,1433;Database=oktell;User Id=b24sync;Password=...;TrustServerCertificate=true'",
        "needs a SQL Server (tests/mssql_live.rs covers doctor, init-db and sync there)",
    ),
    (
        "docs/sql-server.md",
        "sqlcmd -S tcp:sql01,1433 -d oktell -U <login> -C -b -i sql/mssql/fix_duplicate_leads.sql",
        "needs a SQL Server and sqlcmd",
    ),
];

/// The numbers the documents look up, and the lead each must find: the test adds a
/// Russian lead (+7 912 345-67-89) and a Belarusian one (+375 29 123-45-67) to the portal.
const LOOKUPS: &[(&str, Country)] = &[
    ("89123456789", Country::Ru),
    ("+375 29 123-45-67", Country::By),
    ("80291234567", Country::By),
    ("3456789", Country::Ru),
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Country {
    Ru,
    By,
}

/// One invocation found in a document.
#[derive(Debug, Clone)]
struct Found {
    file: String,
    line: usize,
    /// As written: the trimmed line of a code block, or the inline span.
    raw: String,
    /// `b24sync` arguments, placeholders not yet substituted.
    args: Vec<String>,
    /// `cargo run ... --` instead of the binary.
    via_cargo: bool,
    /// Environment in force, placeholders not yet substituted.
    env: BTreeMap<String, String>,
    /// `> FILE` after the command.
    stdout_to: Option<String>,
    /// Run by a scheduler (an absolute path to the binary), not in the reader's shell.
    scheduled: bool,
    skipped: Option<&'static str>,
}

/// Shell-like words: quotes group and are removed, a word starting with `#` starts a
/// comment, backslashes are literal (the Windows lines).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None if c == '#' && !in_word => break,
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

fn is_assignment(w: &str) -> Option<(String, String)> {
    let (k, v) = w.split_once('=')?;
    let ok = !k.is_empty()
        && k.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && k.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    ok.then(|| (k.to_string(), v.to_string()))
}

/// `b24sync`, `/usr/local/bin/b24sync`, `C:\b24sync\b24sync.exe`, `ExecStart=/usr/.../b24sync`.
fn program(w: &str) -> Option<&str> {
    let v = match w.split_once('=') {
        Some((k, v)) if k.chars().all(|c| c.is_ascii_alphanumeric()) => v,
        _ => w,
    };
    let base = v.rsplit(['/', '\\']).next().unwrap_or(v);
    matches!(base, "b24sync" | "b24sync.exe").then_some(v)
}

/// The invocation on a line: (env in front, program path, args, `> FILE`), or `None`.
type Invocation = (
    BTreeMap<String, String>,
    String,
    Vec<String>,
    Option<String>,
);

fn invocation(line: &str) -> Option<Invocation> {
    let ws = words(line);
    // A command line inside one argument (schtasks /TR "..."): that is the invocation.
    for w in &ws {
        if w.contains(' ') {
            if let Some(inv) = invocation(w) {
                return Some(inv);
            }
        }
    }
    let (i, prog) = if ws.first().map(String::as_str) == Some("cargo")
        && ws.get(1).map(String::as_str) == Some("run")
    {
        let dd = ws.iter().position(|w| w == "--")?;
        (dd, "cargo run".to_string())
    } else {
        let i = ws.iter().position(|w| program(w).is_some())?;
        (i, program(&ws[i]).unwrap().to_string())
    };
    // In front of the program only environment assignments, or a cron schedule before them:
    // `b24sync` in the middle of a sentence ("another b24sync run holds ...") is no command.
    let mut env = BTreeMap::new();
    let prefix = if prog == "cargo run" {
        &[][..]
    } else {
        &ws[..i]
    };
    for w in prefix {
        if let Some((k, v)) = is_assignment(w) {
            env.insert(k, v);
        } else if !env.is_empty() || !w.chars().all(|c| "0123456789*/,-".contains(c)) {
            return None;
        }
    }
    let mut args = Vec::new();
    let mut stdout_to = None;
    let mut rest = ws[i + 1..].iter();
    while let Some(w) = rest.next() {
        if w == ">" {
            stdout_to = rest.next().cloned();
        } else if let Some(f) = w.strip_prefix('>') {
            stdout_to = Some(f.to_string());
        } else {
            args.push(w.clone());
        }
    }
    // A bare subcommand word is needed: `b24sync` in prose ("b24sync gave up") is not a command.
    let first = args.first()?;
    if !first.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
        return None;
    }
    Some((env, prog, args, stdout_to))
}

fn doc_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![(
        "README.md".to_string(),
        std::fs::read_to_string(root.join("README.md")).unwrap(),
    )];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    for p in docs {
        let name = format!("docs/{}", p.file_name().unwrap().to_string_lossy());
        files.push((name, std::fs::read_to_string(&p).unwrap()));
    }
    files
}

/// Every invocation in the documents, in reading order, with the environment in force.
/// Returns also the skip entries that matched nothing.
fn extract(files: &[(String, String)]) -> (Vec<Found>, Vec<String>) {
    let mut found = Vec::new();
    let mut used_skips = vec![false; SKIP.len()];
    let mut used_blocks = vec![false; SKIP_BLOCKS.len()];
    // The reader's shell: exports stay in force.
    let mut session: BTreeMap<String, String> = BTreeMap::new();
    let mut seen_inline = std::collections::HashSet::new();
    for (file, text) in files {
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            if !lines[i].trim_start().starts_with("```") {
                if file == "README.md" {
                    for (n, span) in lines[i].split('`').enumerate() {
                        if n % 2 == 1 && seen_inline.insert(span.to_string()) {
                            if let Some((env, prog, args, stdout_to)) = invocation(span) {
                                let mut all = session.clone();
                                all.extend(env);
                                found.push(Found {
                                    file: file.clone(),
                                    line: i + 1,
                                    raw: span.to_string(),
                                    args,
                                    via_cargo: prog == "cargo run",
                                    env: all,
                                    stdout_to,
                                    scheduled: false,
                                    skipped: None,
                                });
                            }
                        }
                    }
                }
                i += 1;
                continue;
            }
            // A fenced block: lines up to the closing fence.
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && !lines[end].trim_start().starts_with("```") {
                end += 1;
            }
            let block: Vec<&str> = lines[start..end].iter().map(|l| l.trim()).collect();
            let block_skip = SKIP_BLOCKS
                .iter()
                .position(|(f, l, _)| f == file && block.contains(l));
            if let Some(b) = block_skip {
                used_blocks[b] = true;
            }
            let mut exports = BTreeMap::new();
            let mut env_file: Option<String> = None;
            for (k, l) in block.iter().enumerate() {
                if let Some(rest) = l.strip_prefix("export ") {
                    if let Some((key, v)) = words(rest).first().and_then(|w| is_assignment(w)) {
                        exports.insert(key, v);
                    }
                    continue;
                }
                if let Some(f) = l.strip_prefix("EnvironmentFile=") {
                    env_file = Some(f.to_string());
                    continue;
                }
                let Some((env, prog, args, stdout_to)) = invocation(l) else {
                    continue;
                };
                // A scheduler runs an absolute path with nothing but its own environment.
                let scheduled = prog.contains('/') || prog.contains('\\');
                let mut all = if scheduled {
                    BTreeMap::new()
                } else {
                    let mut s = session.clone();
                    s.extend(exports.clone());
                    s
                };
                if l.starts_with("ExecStart=") {
                    if let Some(f) = &env_file {
                        all.insert("@EnvironmentFile".into(), f.clone());
                    }
                }
                all.extend(env);
                let skipped = match block_skip {
                    Some(b) => Some(SKIP_BLOCKS[b].2),
                    None => SKIP
                        .iter()
                        .position(|(f, r, _)| f == file && r == l)
                        .map(|s| {
                            used_skips[s] = true;
                            SKIP[s].2
                        }),
                };
                found.push(Found {
                    file: file.clone(),
                    line: start + k + 1,
                    raw: l.to_string(),
                    args,
                    via_cargo: prog == "cargo run",
                    env: all,
                    stdout_to,
                    scheduled,
                    skipped,
                });
            }
            if block_skip.is_none() {
                session.extend(exports);
            }
            i = end + 1;
        }
    }
    for f in found.iter_mut().filter(|f| f.skipped.is_none()) {
        if let Some(s) = SKIP
            .iter()
            .position(|(file, r, _)| *file == f.file && *r == f.raw)
        {
            used_skips[s] = true;
            f.skipped = Some(SKIP[s].2);
        }
    }
    let mut stale: Vec<String> = SKIP
        .iter()
        .zip(&used_skips)
        .filter(|(_, u)| !**u)
        .map(|((f, r, _), _)| format!("SKIP {f}: {r}"))
        .collect();
    stale.extend(
        SKIP_BLOCKS
            .iter()
            .zip(&used_blocks)
            .filter(|(_, u)| !**u)
            .map(|((f, l, _), _)| format!("SKIP_BLOCKS {f}: {l}")),
    );
    (found, stale)
}

/// The order a user runs things in: set up, load, look, review.
fn phase(args: &[String]) -> u8 {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["config", ..] | ["simulator", ..] | ["init-db", ..] => 0,
        ["sync", rest @ ..] if !rest.contains(&"--dry-run") => 1,
        ["sync", ..] | ["doctor", ..] | ["status", ..] | ["run", ..] => 2,
        ["lookup", ..] | ["errors", "list", ..] => 3,
        ["errors", "retry", ..] => 4,
        _ => 5,
    }
}

/// Where the documents' paths are put: relative ones in the reader's working directory,
/// absolute ones (Unix or Windows) under `root/`.
struct Paths {
    cwd: PathBuf,
    root: PathBuf,
}

impl Paths {
    fn map(&self, p: &str) -> PathBuf {
        if p == "PATH" {
            return self.cwd.join("some-other-file.sqlite");
        }
        let win = p.len() > 2 && p.as_bytes()[1] == b':' && p.as_bytes()[2] == b'\\';
        let path = if win {
            let mut q = self.root.join(&p[..1]);
            for part in p[3..].split('\\') {
                q.push(part);
            }
            q
        } else if let Some(abs) = p.strip_prefix('/') {
            self.root.join(abs)
        } else {
            self.cwd.join(p)
        };
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        path
    }

    fn is_path(s: &str) -> bool {
        s == "PATH"
            || [".db", ".toml", ".env", ".sqlite"]
                .iter()
                .any(|e| s.ends_with(e) && !s.contains('='))
    }
}

struct World {
    sim: Simulator,
    paths: Paths,
    ru_lead: i64,
    by_lead: i64,
    bad_leads: [i64; 2],
}

impl World {
    fn subst(&self, s: &str) -> String {
        if s.starts_with("https://") && s.contains("/rest/") {
            self.sim.webhook_url()
        } else if s == "UF_CRM_1712345678" {
            // The README's example code of the "solution" list field.
            SOLUTION.to_string()
        } else if Paths::is_path(s) {
            self.paths.map(s).to_string_lossy().into_owned()
        } else {
            s.to_string()
        }
    }

    /// The environment a command runs with, placeholders substituted.
    fn env(&self, f: &Found) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v) in &f.env {
            if k == "@EnvironmentFile" {
                // The systemd unit's file, as the reader would write it.
                let file = self.paths.map(v);
                let text = std::fs::read_to_string(&file).unwrap();
                for l in text.lines() {
                    if let Some((k, v)) = is_assignment(l.trim()) {
                        out.insert(k, v);
                    }
                }
            } else {
                out.insert(k.clone(), self.subst(v));
            }
        }
        out
    }

    /// The database a command works on: `--db`, else `B24SYNC_DB`, else the settings file's
    /// `db`, else `./b24sync.db`.
    fn db_of(&self, args: &[String], env: &BTreeMap<String, String>) -> PathBuf {
        if let Some(i) = args.iter().position(|a| a == "--db") {
            return PathBuf::from(&args[i + 1]);
        }
        if let Some(db) = env.get("B24SYNC_DB") {
            return PathBuf::from(db);
        }
        if let Some(i) = args.iter().position(|a| a == "--config") {
            let text = std::fs::read_to_string(&args[i + 1]).unwrap();
            let v: toml::Value = toml::from_str(&text).unwrap();
            if let Some(db) = v.get("db").and_then(|d| d.as_str()) {
                return PathBuf::from(db);
            }
        }
        self.paths.cwd.join("b24sync.db")
    }
}

fn lead(title: &str, phone: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("TITLE".into(), json!(title));
    m.insert("NAME".into(), json!("Иван"));
    m.insert(
        "PHONE".into(),
        json!([{"VALUE_TYPE": "WORK", "VALUE": phone, "TYPE_ID": "PHONE"}]),
    );
    m
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

fn assert_accepted(f: &Found, out: &Output) {
    let err = text(&out.stderr);
    let clap = [
        "unexpected argument",
        "unrecognized subcommand",
        "invalid value",
        "Usage:",
    ];
    assert!(
        !(out.status.code() == Some(2) && clap.iter().any(|c| err.contains(c))),
        "{}:{} `{}` is not accepted as written: {err}",
        f.file,
        f.line,
        f.raw
    );
    assert!(
        !err.contains("panicked"),
        "{}:{} `{}`: {err}",
        f.file,
        f.line,
        f.raw
    );
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// A count, 0 when the file or table is not there yet; never creates the file (a command
/// that must not create a database would otherwise find one).
fn count_if_there(db: &Path, sql: &str) -> i64 {
    if !db.exists() {
        return 0;
    }
    count_or_zero(db, sql)
}

fn error_rows(db: &Path) -> i64 {
    count(db, "SELECT COUNT(*) FROM bitrix_import_lead_error")
}

fn finished_runs(db: &Path) -> i64 {
    count_if_there(
        db,
        "SELECT COUNT(*) FROM b24sync_runs WHERE finished_at IS NOT NULL",
    )
}

/// Runs a long-running command until `ready` says so, then stops it with `signal`.
async fn run_until(
    cmd: &mut tokio::process::Command,
    signal: &str,
    mut ready: impl FnMut(&str) -> bool,
) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !ready(&seen) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never got ready: {seen}"
        );
        if let Ok(Ok(Some(l))) =
            tokio::time::timeout(Duration::from_millis(100), stdout.next_line()).await
        {
            seen.push_str(&l);
            seen.push('\n');
        }
    }
    // No pause: the commands listen for signals before they print anything.
    std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    let mut out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("it stops after the signal")
        .unwrap();
    out.stdout = seen.into_bytes();
    out
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_commands_run_as_written() {
    let files = doc_files();
    let (found, stale) = extract(&files);
    assert!(
        stale.is_empty(),
        "skip entries that name no command of the documents (remove them): {stale:#?}"
    );
    assert!(
        found.iter().filter(|f| f.skipped.is_none()).count() >= 15,
        "the extraction finds the README's commands: {found:#?}"
    );

    let sim = Simulator::start(SimulatorConfig {
        leads: 500,
        solution_field: SOLUTION.into(),
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let portal = sim.portal();
    let ru_lead = portal.add_lead(lead("Окна в офис", "+7 912 345-67-89"));
    let by_lead = portal.add_lead(lead("Минск", "+375 29 123-45-67"));
    let bad = |title: &str| {
        let mut m = lead(title, "+7 900 000-00-01");
        m.insert("BIRTHDATE".into(), json!("31.02.2020"));
        portal.add_lead(m)
    };
    let bad_leads = [
        bad("дата рождения 31.02 (исправят)"),
        bad("дата рождения 31.02"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let world = World {
        paths: Paths {
            cwd: dir.path().join("home"),
            root: dir.path().join("root"),
        },
        sim,
        ru_lead,
        by_lead,
        bad_leads,
    };
    std::fs::create_dir_all(&world.paths.cwd).unwrap();
    // What the reader writes themselves: the systemd unit's environment file, and another
    // SQLite file for `init-db --db PATH`.
    std::fs::write(
        world.paths.map("/etc/b24sync.env"),
        format!(
            "B24SYNC_WEBHOOK={}\nB24SYNC_DB={}\nB24SYNC_APPLICATION_TOKEN=token-in-the-env-file\n",
            world.sim.webhook_url(),
            world.paths.map("/var/lib/b24sync/leads.db").display()
        ),
    )
    .unwrap();
    rusqlite::Connection::open(world.paths.map("PATH"))
        .unwrap()
        .execute_batch("CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('kept');")
        .unwrap();

    let mut todo: Vec<&Found> = found.iter().filter(|f| f.skipped.is_none()).collect();
    todo.sort_by_key(|f| phase(&f.args));
    let mut report = Vec::new();
    let mut config_example: Option<String> = None;
    let mut session_db: Option<PathBuf> = None;
    for f in todo {
        let args: Vec<String> = f.args.iter().map(|a| world.subst(a)).collect();
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let what = format!("{}:{} `{}`", f.file, f.line, f.raw);
        assert!(!f.via_cargo, "{what}: add it to SKIP or run it here");

        // Windows lines: the settings file next to the binary, as the reader fills it in
        // from `config example` (webhook, db and solution field uncommented).
        if let Some(i) = a.iter().position(|x| *x == "--config") {
            let example = config_example
                .as_ref()
                .unwrap_or_else(|| panic!("{what}: `config example` runs first"));
            let filled = fill_config(example, &world);
            std::fs::write(a[i + 1], filled).unwrap();
        }
        let env = world.env(f);
        let db = world.db_of(&args, &env);
        // The reader's shell works on one database: the one the walkthrough's first command
        // names (a command that goes to another must say so, like `init-db --db PATH`).
        if !f.scheduled
            && !f.args.iter().any(|x| x == "PATH")
            && !matches!(a[0], "config" | "simulator")
        {
            let first = session_db.get_or_insert_with(|| db.clone());
            assert_eq!(
                *first, db,
                "{what} works on another database than the commands before it"
            );
        }
        let mut cmd = b24sync();
        cmd.args(&args).envs(&env).current_dir(&world.paths.cwd);

        let errors_before = count_if_there(&db, "SELECT COUNT(*) FROM bitrix_import_lead_error");
        let before = (
            count_if_there(&db, "SELECT COUNT(*) FROM bitrix_leads"),
            finished_runs(&db),
        );
        let out = match a.as_slice() {
            ["run", ..] | ["serve", ..] => {
                let done = before.1;
                let dbp = db.clone();
                // Bounded: stopped with SIGTERM once its first sync has finished.
                let out = run_until(&mut cmd, "-TERM", move |_| finished_runs(&dbp) > done).await;
                assert_eq!(code(&out), Some(0), "{what}: {}", text(&out.stderr));
                out
            }
            ["simulator", ..] => {
                let out = run_until(&mut cmd, "-INT", |s| s.contains("Ctrl-C")).await;
                let url = text(&out.stdout);
                assert!(url.contains("http://127.0.0.1:"), "{what}: {url}");
                assert!(url.contains("Ctrl-C"), "{what}: {url}");
                assert_eq!(code(&out), Some(0), "{what}: {}", text(&out.stderr));
                out
            }
            ["sync", rest @ ..] if rest.contains(&"--dry-run") => {
                // An edit in Bitrix24 that the dry run sees and must not write.
                assert!(world.sim.portal().update_lead(world.ru_lead, |l| {
                    l.insert("TITLE".into(), json!("Окна в офис (изменено)"));
                }));
                let contacts = count(&db, "SELECT COUNT(*) FROM bitrix_lead_contacts");
                let out = run_cmd(&mut cmd).await;
                assert!(
                    matches!(code(&out), Some(0) | Some(3)),
                    "{what}: {}",
                    text(&out.stderr)
                );
                assert_eq!(
                    query_strings(
                        &db,
                        &format!(
                            "SELECT sql_TITLE FROM bitrix_leads WHERE sql_ID = {}",
                            world.ru_lead
                        )
                    ),
                    vec![vec![Some("Окна в офис".to_string())]],
                    "{what} writes nothing"
                );
                assert_eq!(
                    count(&db, "SELECT COUNT(*) FROM bitrix_leads"),
                    before.0,
                    "{what}"
                );
                assert_eq!(
                    count(&db, "SELECT COUNT(*) FROM bitrix_lead_contacts"),
                    contacts,
                    "{what}"
                );
                out
            }
            ["errors", "retry", ..] => {
                // One of the two bad leads is fixed in Bitrix24 meanwhile.
                assert!(world.sim.portal().update_lead(world.bad_leads[0], |l| {
                    l.insert("BIRTHDATE".into(), json!("2020-02-28T00:00:00+03:00"));
                }));
                run_cmd(&mut cmd).await
            }
            _ => run_cmd(&mut cmd).await,
        };
        assert_accepted(f, &out);
        let stdout = text(&out.stdout);
        let err = text(&out.stderr);
        if let Some(to) = &f.stdout_to {
            std::fs::write(world.subst(to), &out.stdout).unwrap();
        }

        match a.as_slice() {
            ["config", "example"] => {
                assert_eq!(code(&out), Some(0), "{what}: {err}");
                assert!(
                    stdout.contains("webhook") && stdout.contains("B24SYNC_DB"),
                    "{what}: {stdout}"
                );
                // As written, the file lands where later commands pick it up by themselves
                // (./b24sync.toml): it must not change what they do.
                config_example = Some(stdout.clone());
            }
            ["init-db", ..] => {
                assert_eq!(code(&out), Some(0), "{what}: {err}");
                assert_eq!(
                    count(&db, "SELECT COUNT(*) FROM bitrix_leads"),
                    before.0,
                    "{what}"
                );
                if db == world.paths.map("PATH") {
                    assert_eq!(
                        count(&db, "SELECT COUNT(*) FROM notes"),
                        1,
                        "{what} keeps other tables"
                    );
                }
            }
            ["sync", rest @ ..] if !rest.contains(&"--dry-run") => {
                assert!(matches!(code(&out), Some(0) | Some(3)), "{what}: {err}");
                let ids = world.sim.portal().lead_ids();
                assert_eq!(
                    count(&db, "SELECT COUNT(DISTINCT sql_ID) FROM bitrix_leads"),
                    ids.len() as i64,
                    "{what}: every lead of the portal is in bitrix_leads"
                );
                assert!(
                    error_rows(&db) > 0,
                    "{what}: the bad birthdays are in the error table"
                );
                assert_eq!(
                    code(&out),
                    Some(3),
                    "{what}: error rows make it exit 3: {err}"
                );
                if rest.contains(&"--solution-field") {
                    assert!(
                        count(&db, "SELECT COUNT(*) FROM bitrix_lead_solution") > 0,
                        "{what}: the solution field is copied"
                    );
                }
            }
            ["doctor", ..] => assert_eq!(code(&out), Some(0), "{what}: {stdout}{err}"),
            ["status", ..] => {
                assert_eq!(code(&out), Some(0), "{what}: {err}");
                assert!(!stdout.trim().is_empty(), "{what} shows the runs");
            }
            ["lookup", number, ..] => {
                assert_eq!(code(&out), Some(0), "{what}: {err}");
                let expect = LOOKUPS
                    .iter()
                    .find(|(n, _)| n == number)
                    .unwrap_or_else(|| panic!("{what}: add {number} to LOOKUPS"))
                    .1;
                let id = match expect {
                    Country::Ru => world.ru_lead,
                    Country::By => world.by_lead,
                };
                if a.contains(&"--json") {
                    let v: Value = serde_json::from_str(&stdout)
                        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {stdout}"));
                    assert!(
                        v.to_string().contains(&id.to_string()),
                        "{what}: lead {id}: {v}"
                    );
                } else {
                    assert!(
                        stdout
                            .split(|c: char| !c.is_ascii_digit())
                            .any(|w| w == id.to_string()),
                        "{what} finds lead {id}: {stdout}"
                    );
                }
            }
            ["errors", "list", ..] => {
                assert_eq!(code(&out), Some(0), "{what}: {err}");
                for id in world.bad_leads {
                    assert!(
                        stdout
                            .lines()
                            .any(|l| l.split('\t').next() == Some(&id.to_string())),
                        "{what} lists lead {id}: {stdout}"
                    );
                }
            }
            ["errors", "retry", ..] => {
                assert_eq!(
                    code(&out),
                    Some(3),
                    "{what}: exits 3 while rows remain: {err}"
                );
                let left = |id: i64| {
                    count(
                        &db,
                        &format!(
                            "SELECT COUNT(*) FROM bitrix_import_lead_error WHERE sql_ID = '{id}'"
                        ),
                    )
                };
                assert_eq!(
                    left(world.bad_leads[0]),
                    0,
                    "{what}: the fixed lead's rows go"
                );
                assert!(left(world.bad_leads[1]) > 0, "{what}: the other stays");
            }
            ["errors", "clear", "--before", date] => {
                assert_eq!(code(&out), Some(0), "{what}: {err}");
                // Every row was first seen today: all stay when the date is not after today.
                let today = chrono::Local::now().format("%Y-%m-%d").to_string();
                let left = if **date <= *today.as_str() {
                    errors_before
                } else {
                    0
                };
                assert!(errors_before > 0, "{what}: rows to keep or clear");
                assert_eq!(
                    error_rows(&db),
                    left,
                    "{what}: rows first seen before {date} go"
                );
            }
            ["token", "status"] => assert_eq!(code(&out), Some(0), "{what}: {err}"),
            ["run", ..] | ["serve", ..] | ["simulator", ..] | ["sync", ..] => {}
            _ => panic!("{what}: no expectation for this command yet: add one here, or to SKIP"),
        }
        report.push(format!("ran {what} -> exit {:?}", code(&out)));
    }
    for f in found.iter().filter(|f| f.skipped.is_some()) {
        report.push(format!(
            "skipped {}:{} `{}`: {}",
            f.file,
            f.line,
            f.raw,
            f.skipped.unwrap()
        ));
    }
    println!("{}", report.join("\n"));
}

/// `config example` with webhook, db and solution field uncommented and filled in.
fn fill_config(example: &str, world: &World) -> String {
    let db = world.paths.map("C:\\b24sync\\leads.db");
    let values: HashMap<&str, String> = [
        ("webhook", world.sim.webhook_url()),
        ("db", db.to_string_lossy().into_owned()),
        ("solution_field", SOLUTION.to_string()),
    ]
    .into_iter()
    .collect();
    let mut filled = 0;
    let out: Vec<String> = example
        .lines()
        .map(|l| {
            for (k, v) in &values {
                if l.starts_with(&format!("# {k} = ")) {
                    filled += 1;
                    return format!("{k} = {}", toml::Value::String(v.clone()));
                }
            }
            l.to_string()
        })
        .collect();
    assert_eq!(
        filled, 3,
        "config example has webhook, db, solution_field: {example}"
    );
    out.join("\n")
}

#[test]
fn the_extraction_cuts_the_invocation_out_of_scheduler_lines() {
    let (env, prog, args, _) = invocation(
        "*/5 * * * * B24SYNC_WEBHOOK=https://x.bitrix24.ru/rest/1/a/ /usr/local/bin/b24sync sync --db /var/lib/b24sync/leads.db -q",
    )
    .unwrap();
    assert_eq!(prog, "/usr/local/bin/b24sync");
    assert_eq!(env["B24SYNC_WEBHOOK"], "https://x.bitrix24.ru/rest/1/a/");
    assert_eq!(args, ["sync", "--db", "/var/lib/b24sync/leads.db", "-q"]);
    let (_, prog, args, _) = invocation(
        r#"schtasks /Create /TN b24sync /SC MINUTE /MO 5 /TR "C:\b24sync\b24sync.exe sync --config C:\b24sync\b24sync.toml -q""#,
    )
    .unwrap();
    assert_eq!(prog, r"C:\b24sync\b24sync.exe");
    assert_eq!(args, ["sync", "--config", r"C:\b24sync\b24sync.toml", "-q"]);
    let (_, prog, args, _) = invocation("ExecStart=/usr/local/bin/b24sync sync -q").unwrap();
    assert_eq!((prog.as_str(), args.len()), ("/usr/local/bin/b24sync", 2));
    let (_, _, args, to) = invocation("b24sync config example > b24sync.toml").unwrap();
    assert_eq!((args.len(), to.as_deref()), (2, Some("b24sync.toml")));
    let (_, _, args, _) = invocation("b24sync errors list            # lead ID, when").unwrap();
    assert_eq!(args, ["errors", "list"]);
    for prose in [
        "another b24sync run holds the lock",
        "GRANT SELECT ON SCHEMA::dbo TO b24sync;",
        "Server=tcp:sql01,1433;Database=oktell;User Id=b24sync;Password=...",
        "FROM dbo.b24sync_lookup_caller(N'89123456789', 10)",
    ] {
        assert!(invocation(prose).is_none(), "{prose}");
    }
}

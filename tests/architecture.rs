//! The shape of the code, checked on the source tree (see docs/architecture.md): the
//! library's top-level modules import each other without loops and only downstream, no
//! trait has more than 8 methods, no source file has more than 600 lines of code outside its
//! tests, the library never names the simulator, and comments and docs cite only files
//! that are in the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Most methods a trait may have: a trait is sized to one role.
const MAX_TRAIT_METHODS: usize = 8;
/// Most lines (comments included, tests excluded) a source file may have.
const MAX_CODE_LINES: usize = 600;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') || name == ".ci" {
                files_under(&p, ext, out);
            }
        } else if name.ends_with(ext) {
            out.push(p);
        }
    }
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root())
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

/// The library's source files (the binary's `main.rs` and `cli/` are not the library).
fn library_files() -> Vec<PathBuf> {
    let mut all = Vec::new();
    files_under(&root().join("src"), ".rs", &mut all);
    all.into_iter()
        .filter(|p| {
            let r = rel(p);
            r != "src/main.rs" && !r.starts_with("src/cli/")
        })
        .collect()
}

/// Every Rust source file of the workspace that is not a test: the crates' sources, the
/// benchmarks and the examples.
fn source_files() -> Vec<PathBuf> {
    let mut all = Vec::new();
    files_under(&root().join("src"), ".rs", &mut all);
    files_under(&root().join("benches"), ".rs", &mut all);
    files_under(&root().join("examples"), ".rs", &mut all);
    let mut crates = Vec::new();
    files_under(&root().join("crates"), ".rs", &mut crates);
    all.extend(crates.into_iter().filter(|p| {
        let r = rel(p);
        r.contains("/src/")
    }));
    all
}

/// A file that holds only tests.
fn is_test_file(p: &Path) -> bool {
    let name = p.file_stem().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests" || name.ends_with("_tests") || rel(p).contains("/tests/")
}

/// The file's text without `//` comments and without its inline `#[cfg(test)] mod ... {}`
/// block (written last in a file, by this project's habit).
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_start() == "#[cfg(test)]" {
            if let Some(next) = lines.peek() {
                let n = next.trim_start();
                if n.starts_with("mod ") && n.ends_with('{') {
                    break;
                }
            }
        }
        let code = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The file's lines, comments included, up to its inline `#[cfg(test)] mod ... {}` block.
fn lines_before_tests(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .position(|w| {
            w[0].trim_start() == "#[cfg(test)]" && {
                let n = w[1].trim_start();
                n.starts_with("mod ") && n.ends_with('{')
            }
        })
        .unwrap_or(lines.len())
}

/// The library's top-level module a file belongs to (`src/run/plan.rs` → `run`).
fn top_module(p: &Path) -> String {
    let r = rel(p);
    let inner = r.trim_start_matches("src/");
    let first = inner.split('/').next().unwrap_or(inner);
    first.trim_end_matches(".rs").to_string()
}

/// The identifiers that follow `prefix` in `code` (`crate::` → `run`, `load`, ...),
/// including the names inside `crate::{a, b::c}`.
fn names_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Edges between the library's top-level modules: `from` names `crate::to`.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = library_files();
    let modules: BTreeSet<String> = files.iter().map(|p| top_module(p)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &files {
        let from = top_module(p);
        // A test file may drive the stages downstream of its module to check them.
        if from == "lib" || is_test_file(p) {
            continue;
        }
        let text = fs::read_to_string(p).unwrap();
        for to in names_after(&code_of(&text), "crate::") {
            if to != from && modules.contains(&to) {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
        graph.entry(from).or_default();
    }
    graph
}

/// A cycle in `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_library_modules_import_each_other_without_loops() {
    let graph = module_graph();
    assert!(
        graph.len() >= 6,
        "expected the library's modules, found {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "import loop between the library's modules: {}\nthe whole graph: {graph:#?}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn data_flows_one_way_through_the_stages() {
    let graph = module_graph();
    // Each stage may import what is upstream of it, never what is downstream.
    let forbidden: &[(&str, &[&str])] = &[
        (
            "model",
            &[
                "extract",
                "transform",
                "prepare",
                "load",
                "run",
                "store",
                "serve",
            ],
        ),
        (
            "schema",
            &["extract", "transform", "prepare", "load", "run", "serve"],
        ),
        ("extract", &["transform", "prepare", "load", "run", "serve"]),
        (
            "transform",
            &["extract", "prepare", "load", "run", "store", "serve"],
        ),
        ("prepare", &["extract", "load", "run", "store", "serve"]),
        ("store", &["extract", "load", "run", "serve"]),
        ("load", &["extract", "run", "serve"]),
        // `serve` is a driver beside `run`: it uses `run`, never the other way round.
        ("run", &["serve"]),
        ("exit", &["serve"]),
    ];
    let mut wrong = Vec::new();
    for (from, banned) in forbidden {
        for to in graph.get(*from).into_iter().flatten() {
            if banned.contains(&to.as_str()) {
                wrong.push(format!("{from} imports {to}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "upstream modules import downstream ones: {wrong:?}"
    );
}

#[test]
fn the_backends_do_not_import_each_other() {
    let mut wrong = Vec::new();
    for (dir, other) in [("src/load/sqlite", "mssql"), ("src/load/mssql", "sqlite")] {
        let mut files = Vec::new();
        files_under(&root().join(dir), ".rs", &mut files);
        assert!(!files.is_empty(), "no files under {dir}");
        for p in files {
            let code = code_of(&fs::read_to_string(&p).unwrap());
            let mut names = names_after(&code, "load::");
            names.extend(names_after(&code, "super::"));
            if names.contains(other) {
                wrong.push(format!("{} names the {other} backend", rel(&p)));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[test]
fn the_library_never_names_the_simulator() {
    let mut wrong = Vec::new();
    for p in library_files() {
        let code = code_of(&fs::read_to_string(&p).unwrap());
        if code.contains("simulator::")
            || code.contains("b24sync_simulator")
            || code.contains("mod simulator")
        {
            wrong.push(rel(&p));
        }
    }
    assert!(
        wrong.is_empty(),
        "the syncing library must not use the simulator: {wrong:?}"
    );
}

/// `(name, methods)` of every trait declared in `code`.
fn traits_in(code: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("trait ") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "trait ".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let Some(open) = rest.find('{') else { break };
        if rest[..open].contains(';') {
            continue;
        }
        let mut depth = 0usize;
        let mut methods = 0usize;
        let body = &rest[open..];
        let mut end = body.len();
        for (j, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = j;
                        break;
                    }
                }
                'f' if depth == 1
                    && body[j..].starts_with("fn ")
                    && !body[..j].ends_with(|c: char| c.is_alphanumeric() || c == '_') =>
                {
                    methods += 1
                }
                _ => {}
            }
        }
        out.push((name, methods));
        rest = &rest[open + end..];
    }
    out
}

#[test]
fn no_trait_has_more_than_eight_methods() {
    let mut big = Vec::new();
    let mut seen = 0;
    for p in source_files() {
        let code = code_of(&fs::read_to_string(&p).unwrap());
        for (name, methods) in traits_in(&code) {
            seen += 1;
            if methods > MAX_TRAIT_METHODS {
                big.push(format!("{} `{name}`: {methods} methods", rel(&p)));
            }
        }
    }
    assert!(seen >= 8, "found only {seen} traits: is the scan broken?");
    assert!(
        big.is_empty(),
        "traits over {MAX_TRAIT_METHODS} methods: {big:?}"
    );
}

#[test]
fn no_source_file_has_more_than_600_lines_outside_its_tests() {
    let mut long = Vec::new();
    for p in source_files() {
        if is_test_file(&p) {
            continue;
        }
        let text = fs::read_to_string(&p).unwrap();
        let lines = lines_before_tests(&text);
        if lines > MAX_CODE_LINES {
            long.push(format!("{}: {lines} lines", rel(&p)));
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_CODE_LINES} lines (tests excluded): {long:?}"
    );
}

/// Paths into the repository that `text` cites (`docs/x.md`, `sql/mssql/y.sql`, ...).
fn cited_paths(text: &str) -> Vec<String> {
    const ROOTS: &[&str] = &[
        "docs/",
        "sql/",
        "src/",
        "tests/",
        "benches/",
        "examples/",
        "crates/",
        ".ci/",
    ];
    // A line that names another repository cites that repository's files, not ours.
    const OTHER_REPOS: &[&str] = &["b24phpsdk", "b24jssdk", "b24restdocs", "fast_bitrix24"];
    let ours: String = text
        .lines()
        .filter(|l| !OTHER_REPOS.iter().any(|r| l.contains(r)))
        .collect::<Vec<_>>()
        .join("\n");
    let text = ours.as_str();
    let mut out = Vec::new();
    for root in ROOTS {
        let mut rest = text;
        while let Some(i) = rest.find(root) {
            let before = rest[..i].chars().next_back();
            let tail = &rest[i..];
            rest = &rest[i + root.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || "_-./:~".contains(c)) {
                continue;
            }
            let path: String = tail
                .chars()
                .take_while(|c| c.is_alphanumeric() || "_-./".contains(*c))
                .collect();
            let path = path.trim_end_matches(['.', '/']).to_string();
            let has_ext = path
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains('.'));
            if has_ext {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn docs_and_comments_cite_only_files_in_the_repository() {
    let mut texts = Vec::new();
    files_under(&root(), ".md", &mut texts);
    files_under(&root(), ".rs", &mut texts);
    files_under(&root().join("sql"), ".sql", &mut texts);
    let mut wrong = Vec::new();
    let mut checked = 0;
    for p in texts {
        let r = rel(&p);
        if r.starts_with("target/") || r == "tests/architecture.rs" {
            continue;
        }
        let text = fs::read_to_string(&p).unwrap();
        if text.contains("../shared") {
            wrong.push(format!("{r} cites ../shared (not in the repository)"));
        }
        for cited in cited_paths(&text) {
            checked += 1;
            if !root().join(&cited).exists() {
                wrong.push(format!("{r} cites {cited}, which is not in the repository"));
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} citations found: is the scan broken?"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checks_themselves_find_what_they_look_for() {
    // A loop is found; a chain is not one.
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default();
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    // Imports are read from paths and groups, comments and tests left out.
    let code = code_of(
        "use crate::{load::Stores, model};\nfn f() { crate::run::x(); } // crate::exit\n\
         #[cfg(test)]\nmod tests {\n use crate::extract;\n}\n",
    );
    assert_eq!(
        names_after(&code, "crate::"),
        ["load", "model", "run"].map(String::from).into()
    );
    assert_eq!(
        lines_before_tests("a\n// b\n#[cfg(test)]\nmod tests {\n}\n"),
        2
    );
    assert_eq!(lines_before_tests("a\n#[cfg(test)]\nmod tests;\nb\n"), 4);
    // Methods are counted at the trait's own depth.
    let traits =
        traits_in("pub trait T: Send {\n fn a(&self);\n fn b(&self) { let f = || {}; }\n}\n");
    assert_eq!(traits, vec![("T".to_string(), 2)]);
    assert_eq!(
        cited_paths("see docs/oktell-schema.md, and sql/mssql/ (a folder).\nlike `bitrix24/b24phpsdk` src/Core/Batch.php"),
        vec!["docs/oktell-schema.md".to_string()]
    );
}

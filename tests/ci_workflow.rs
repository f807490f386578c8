//! The GitHub Actions workflow cannot run here; these checks keep it what docs/sql-server.md
//! says it is: SQL Server in a service container, the live tests run for real, release
//! binaries for Linux and Windows, actions pinned by major version.

const WORKFLOW: &str = include_str!("../.github/workflows/ci.yml");

#[test]
fn the_workflow_runs_the_live_tests_against_a_sql_server_container() {
    for needle in [
        "image: mcr.microsoft.com/mssql/server:2022-latest",
        "ACCEPT_EULA: \"Y\"",
        "--health-cmd \"/opt/mssql-tools18/bin/sqlcmd -C ",
        "B24SYNC_TEST_MSSQL: Server=tcp:localhost,1433;User Id=sa;",
        "TrustServerCertificate=true",
        "sql/mssql/create_database.sql",
        "run: cargo fmt --check",
        "run: cargo clippy --all-targets --locked -- -D warnings",
        "run: cargo test --locked\n",
        "run: cargo test --locked --test mssql_live --test stores -- --include-ignored --test-threads=2",
        "target: x86_64-unknown-linux-gnu",
        "target: x86_64-pc-windows-msvc",
        "os: windows-latest",
    ] {
        assert!(WORKFLOW.contains(needle), "ci.yml lacks {needle:?}");
    }
    // The same password in the container, its health check and the test string.
    let password = "B24sync-CI-only-Passw0rd";
    assert!(WORKFLOW.matches(password).count() >= 4);
    // .ci/run runs the same live-test command when the variable is set.
    let ci_run = include_str!("../.ci/run");
    assert!(ci_run.contains(
        "cargo test --locked --test mssql_live --test stores -- --include-ignored --test-threads=2"
    ));
}

#[test]
fn actions_are_pinned_by_major_version() {
    let uses: Vec<&str> = WORKFLOW
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix("uses: "))
        .collect();
    assert!(!uses.is_empty());
    for u in uses {
        assert!(
            [
                "actions/checkout@v4",
                "dtolnay/rust-toolchain@stable",
                "Swatinem/rust-cache@v2",
                "actions/upload-artifact@v4",
            ]
            .contains(&u),
            "unexpected action {u}"
        );
    }
}

#[test]
fn the_workflow_is_yaml_with_the_two_jobs() {
    // No YAML parser among the crate's dependencies: ask python3's (PyYAML) when it is there.
    let script = "import sys, yaml\n\
                  d = yaml.safe_load(open(sys.argv[1]))\n\
                  assert sorted(d['jobs']) == ['release', 'test'], d['jobs'].keys()\n\
                  assert 'mssql' in d['jobs']['test']['services']\n\
                  print('ok')";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/.github/workflows/ci.yml");
    match std::process::Command::new("python3")
        .args(["-c", script, path])
        .output()
    {
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("No module named 'yaml'") => {
            println!("not checked: python3 has no yaml module (pip install pyyaml)")
        }
        Ok(out) => assert!(
            out.status.success(),
            "ci.yml does not parse: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => println!("not checked: no python3 ({e})"),
    }
}

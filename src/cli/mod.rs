//! The command line: clap definitions, settings from flags > environment > TOML file,
//! and the mapping of each command onto the library. No business logic lives here.
//!
//! - `args.rs`, `groups.rs`: the commands and the setting groups they share (clap);
//! - `settings.rs`: flags > environment > TOML file, validated, into one [`Settings`];
//! - `open.rs`: the database behind `--db`; `client.rs`: the webhook client;
//! - one file per command family: `sync.rs` (`sync`, `run`), `db.rs` (`init-db`,
//!   `status`, `errors`), `lookup.rs`, `auth.rs` (`auth`, `token`), `serve.rs` (`serve`,
//!   `events`), `demo.rs` (`demo`,
//!   `simulator`), `ops.rs` (`status` and `doctor` output, `config example`);
//! - `signals.rs`: Ctrl-C / SIGTERM; `closed_stdout.rs`: `| head` ends quietly;
//! - `ui.rs`: how messages, the progress bar and the summary are shown.

mod args;
mod auth;
mod client;
mod closed_stdout;
mod db;
mod demo;
mod groups;
mod lookup;
mod open;
mod ops;
mod serve;
mod settings;
mod signals;
mod sync;
pub mod ui;

pub use b24sync::exit;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command, ConfigCommand};
use b24sync::run::RunError;
use groups::SyncArgs;
use settings::Settings;
// For `ops.rs`.
pub(crate) use client::client_with;
pub(crate) use open::open_db_stores;
pub use open::DbOpen;

/// The binary's entry point.
pub fn main() -> ExitCode {
    closed_stdout::quiet_on_closed_stdout();
    let cli = Cli::parse();
    let json = cli.log_format == "json";
    ui::set(ui::Ui {
        json,
        quiet: cli.quiet,
    });
    init_logging(cli.verbose, cli.quiet, json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ui::error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let code = runtime.block_on(dispatch(cli));
    ExitCode::from(code)
}

fn init_logging(verbose: u8, quiet: bool, json: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("warn,b24sync={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        // No colour codes when stderr is a file or a pipe (scheduler logs).
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
}

async fn dispatch(cli: Cli) -> u8 {
    let file = match settings::load_file(cli.config.as_deref()) {
        Ok(f) => f,
        Err(e) => return fail(exit::CONFIG, &e),
    };
    match cli.command {
        Command::Sync(args) => match Settings::resolve(&args, &file) {
            Ok(s) => sync::sync_command(&s.creating_db()).await,
            Err(e) => fail(exit::CONFIG, &e),
        },
        Command::InitDb(args) => {
            let s = Settings::resolve(
                &SyncArgs {
                    db: args,
                    ..Default::default()
                },
                &file,
            );
            match s {
                Ok(s) => db::init_db_command(&s.creating_db()).await,
                Err(e) => fail(exit::CONFIG, &e),
            }
        }
        Command::Run(args) => match (
            Settings::resolve(&args, &file),
            settings::parse_duration(&args.every),
        ) {
            (Ok(s), Ok(every)) if !every.is_zero() => {
                sync::scheduled_command(&s.creating_db(), every).await
            }
            (Err(e), _) => fail(exit::CONFIG, &e),
            (_, Err(e)) => fail(exit::CONFIG, &anyhow::anyhow!("--every: {e}")),
            (_, Ok(_)) => fail(
                exit::CONFIG,
                &anyhow::anyhow!("--every must be longer than 0 (e.g. 5m)"),
            ),
        },
        Command::Errors(cmd) => db::errors_command(cmd, &file).await,
        Command::Status { db, limit, json } => db::status_command(db, limit, json, &file).await,
        Command::Doctor(args) => match Settings::resolve(&args, &file) {
            Ok(s) => {
                let client = ops::doctor_client(&s).await;
                ops::doctor_command(&s, client).await
            }
            Err(e) => fail(exit::CONFIG, &e),
        },
        Command::Config(ConfigCommand::Example) => {
            print!("{}", ops::config_example());
            exit::OK
        }
        Command::Lookup(args) => lookup::lookup_command(&args, &file).await,
        Command::Demo(args) => demo::demo_command(&args).await,
        Command::Simulator(args) => demo::simulator_command(&args).await,
        Command::Auth(args) => auth::auth_command(&args, &file).await,
        Command::Token { command } => auth::token_command(&command, &file).await,
        Command::Serve(args) => serve::serve_command(&args, &file).await,
        Command::Events(cmd) => serve::events_command(&cmd, &file).await,
    }
}

pub(crate) fn fail(code: u8, e: &anyhow::Error) -> u8 {
    ui::error(&format!("{e:#}"));
    code
}

/// Exit code for a failed run, with the message printed.
pub fn run_error_code(e: &RunError) -> u8 {
    ui::error(&e.to_string());
    exit::for_error(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use settings::FileSettings;

    #[test]
    fn negative_numbers_reach_validation() {
        let cli = Cli::try_parse_from(["b24sync", "sync", "--rate", "-1"]).unwrap();
        let Command::Sync(args) = cli.command else {
            panic!("not sync")
        };
        assert_eq!(args.portal.rate, Some(-1.0));
        let e = Settings::resolve(&args, &FileSettings::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("got -1") && e.contains("1000"), "{e}");
    }

    #[test]
    fn the_clap_definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

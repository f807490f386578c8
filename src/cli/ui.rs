//! How the CLI talks to people and to log shippers: messages on stderr (plain text, or
//! JSON events with `--log-format json` so that every stderr line parses), the one
//! summary line every run ends with, and the progress bar on a terminal.

use std::io::IsTerminal;
use std::sync::OnceLock;

use indicatif::{ProgressBar, ProgressStyle};

use b24sync::run::{summary_line, Progress, RunSummary};

/// How output is shaped, set once at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ui {
    pub json: bool,
    pub quiet: bool,
}

static UI: OnceLock<Ui> = OnceLock::new();

pub fn set(ui: Ui) {
    let _ = UI.set(ui);
}

pub fn get() -> Ui {
    UI.get().copied().unwrap_or_default()
}

/// Report an error: `error: ...` on stderr, or an ERROR event in JSON mode.
pub fn error(msg: &str) {
    if get().json {
        tracing::error!("{msg}");
    } else {
        eprintln!("error: {msg}");
    }
}

/// Report a warning the same way.
pub fn warn(msg: &str) {
    if get().json {
        tracing::warn!("{msg}");
    } else {
        eprintln!("warning: {msg}");
    }
}

/// A note for the person at the terminal (an INFO event in JSON mode).
pub fn note(msg: &str) {
    if get().json {
        tracing::info!("{msg}");
    } else if !get().quiet {
        eprintln!("{msg}");
    }
}

/// The run's last line, with its figures as fields (in JSON they are keys).
pub fn summary(s: &RunSummary, exit_code: u8) {
    let line = summary_line(s);
    macro_rules! emit {
        ($level:expr) => {
            tracing::event!(
                $level,
                summary = true,
                mode = %s.mode,
                leads_read = s.leads_read,
                leads_upserted = s.outcome.leads_inserted + s.outcome.leads_updated,
                leads_inserted = s.outcome.leads_inserted,
                leads_updated = s.outcome.leads_updated,
                leads_deleted = s.leads_deleted,
                contact_values = s.contact_values,
                error_rows = s.outcome.error_rows,
                requests = s.requests,
                server_secs = s.server_secs,
                seconds = s.elapsed.as_secs_f64(),
                exit_code = exit_code,
                "{line}"
            )
        };
    }
    if exit_code == b24sync::exit::OK {
        emit!(tracing::Level::INFO);
    } else {
        emit!(tracing::Level::WARN);
    }
}

/// The last line of a run that failed: the error, with the exit code as a field.
pub fn failure(msg: &str, exit_code: u8) {
    if get().json {
        tracing::error!(summary = true, exit_code = exit_code, error = %msg, "sync failed: {msg}");
    } else {
        eprintln!("error: {msg}");
    }
}

/// A progress bar on an interactive terminal, nothing otherwise.
pub fn progress() -> Option<b24sync::run::ProgressHandle> {
    let ui = get();
    if ui.quiet || ui.json || !std::io::stderr().is_terminal() {
        return None;
    }
    Some(b24sync::run::ProgressHandle(std::sync::Arc::new(
        TerminalProgress {
            bar: ProgressBar::hidden(),
        },
    )))
}

struct TerminalProgress {
    bar: ProgressBar,
}

impl Progress for TerminalProgress {
    fn started(&self, mode: &str, expected: Option<u64>) {
        let style = match expected {
            Some(n) => {
                self.bar.set_length(n);
                ProgressStyle::with_template(
                    "{spinner} {msg} [{bar:30}] {pos}/{len} leads, {rate}, ETA {eta}",
                )
            }
            None => ProgressStyle::with_template("{spinner} {msg}: {pos} leads, {rate}"),
        };
        if let Ok(style) = style {
            // indicatif's own {per_sec} prints "1,030.0832/s": whole leads per second read better.
            self.bar.set_style(style.with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&whole_rate(state.per_sec()));
                },
            ));
        }
        self.bar.set_message(mode.to_string());
        self.bar
            .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        self.bar
            .enable_steady_tick(std::time::Duration::from_millis(200));
    }

    fn advanced(&self, leads: u64) {
        if self.bar.length().is_some_and(|len| leads > len) {
            self.bar.set_length(leads);
        }
        self.bar.set_position(leads);
    }

    fn finished(&self) {
        self.bar.finish_and_clear();
    }
}

/// A rate in whole units with thousands separators: "1,030/s".
fn whole_rate(per_sec: f64) -> String {
    let n = if per_sec.is_finite() && per_sec > 0.0 {
        per_sec.round() as u64
    } else {
        0
    };
    format!("{}/s", indicatif::HumanCount(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_shows_whole_leads_per_second() {
        assert_eq!(whole_rate(1030.0832), "1,030/s");
        assert_eq!(whole_rate(12.6), "13/s");
        assert_eq!(whole_rate(0.2), "0/s");
        assert_eq!(whole_rate(f64::NAN), "0/s");
    }
}

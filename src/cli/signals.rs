//! Ctrl-C and SIGTERM: the first stops a run cleanly (the batch in flight finishes), a
//! second ends the process at once.

use tokio_util::sync::CancellationToken;

use super::{exit, ui};

/// Cancelled on the first Ctrl-C or SIGTERM; a second one ends the process at once.
pub(super) fn interrupt_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    // Listening starts here, not when the task is first polled: a Ctrl-C that comes right
    // after the command starts is a clean interruption, never the default handler's kill.
    let mut signals = Signals::install();
    tokio::spawn(async move {
        signals.recv().await;
        ui::note("interrupted: finishing the batch in flight (press Ctrl-C again to stop at once)");
        t.cancel();
        signals.recv().await;
        std::process::exit(exit::INTERRUPTED as i32);
    });
    token
}

/// Ctrl-C and (on Unix) SIGTERM, listened for from the moment [`Signals::install`] returns.
pub(super) struct Signals {
    #[cfg(unix)]
    unix: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    pub(super) fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            // Registration fails only when the runtime has no signal driver; then the
            // Ctrl-C future below (registered on first poll) is all there is.
            let unix = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(int), Ok(term)) => Some((int, term)),
                _ => None,
            };
            Signals { unix }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// The next Ctrl-C or SIGTERM.
    pub(super) async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some((int, term)) = &mut self.unix {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

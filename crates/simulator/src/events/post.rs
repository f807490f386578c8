//! Posting online events: one background task takes deliveries in the order the changes
//! happened, waits the configured delay, and POSTs each form-encoded body once. A handler
//! that is down, slow (past the timeout) or answers an error loses the event: the portal
//! does not retry either (its events page says so), and a client must reconcile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

/// One POST to make.
pub(crate) struct Delivery {
    pub url: String,
    pub body: String,
}

/// What happened to the posts so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventStats {
    /// Posts the handler answered with a 2xx status.
    pub sent: u64,
    /// Posts that failed: no connection, timeout, or a status other than 2xx.
    pub failed: u64,
    /// Posts queued and not yet made.
    pub pending: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    queued: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> EventStats {
        let sent = self.sent.load(Ordering::SeqCst);
        let failed = self.failed.load(Ordering::SeqCst);
        let queued = self.queued.load(Ordering::SeqCst);
        EventStats {
            sent,
            failed,
            pending: queued.saturating_sub(sent + failed),
        }
    }
}

/// The sending side; dropping every one of them ends the task after the queue drains.
pub(crate) struct Poster {
    tx: mpsc::UnboundedSender<Delivery>,
    pub counters: Arc<Counters>,
}

impl Poster {
    /// Starts the posting task on the current runtime.
    pub fn start(delay: Duration, timeout: Duration) -> Poster {
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(rx, counters.clone(), delay, timeout));
        Poster { tx, counters }
    }

    pub fn send(&self, d: Delivery) {
        self.counters.queued.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(d).is_err() {
            // The task is gone (runtime shutting down): the event is lost, as on the portal.
            self.counters.failed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Delivery>,
    counters: Arc<Counters>,
    delay: Duration,
    timeout: Duration,
) {
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "simulator: cannot build the event poster's HTTP client");
            return;
        }
    };
    while let Some(d) = rx.recv().await {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let outcome = client
            .post(&d.url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(d.body)
            .send()
            .await;
        let ok = matches!(&outcome, Ok(r) if r.status().is_success());
        if !ok {
            tracing::debug!(url = %d.url, "simulator: event post failed; not retried");
        }
        let counter = if ok { &counters.sent } else { &counters.failed };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

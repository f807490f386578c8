//! When a call stops retrying a silent portal: only silence counts against
//! [`ClientConfig::give_up_after`](super::ClientConfig::give_up_after) (nothing answered,
//! or nothing that speaks Bitrix24 JSON); the clock restarts whenever Bitrix24 answers,
//! even with an error. No request or backoff may reach past the moment the budget ends.

use std::time::{Duration, Instant};

use super::ExtractError;

/// The shortest request worth sending: with less of the give-up budget left, give up.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(50);

/// One call's silence clock.
pub(super) struct Silence {
    budget: Duration,
    /// When the call began.
    started: Instant,
    /// When the portal stopped answering (None while it answers).
    since: Option<Instant>,
}

impl Silence {
    pub(super) fn new(budget: Duration) -> Silence {
        Silence {
            budget,
            started: Instant::now(),
            since: None,
        }
    }

    /// What is left of the budget (all of it while the portal answers).
    fn left(&self) -> Duration {
        self.budget
            .saturating_sub(self.since.map_or(Duration::ZERO, |t| t.elapsed()))
    }

    /// Whether the portal has been silent too long for another attempt.
    pub(super) fn exhausted(&self) -> bool {
        self.since.is_some() && self.left() < MIN_ATTEMPT_TIME
    }

    /// The timeout of the next request: the configured one, within what is left.
    pub(super) fn timeout(&self, request_timeout: Duration) -> Duration {
        request_timeout.min(self.left()).max(MIN_ATTEMPT_TIME)
    }

    /// After an attempt that began at `attempt_started`: silent (nothing from Bitrix24
    /// answered) keeps or starts the clock, any answer stops it.
    pub(super) fn observe(&mut self, silent: bool, attempt_started: Instant) {
        if silent {
            self.since.get_or_insert(attempt_started);
        } else {
            self.since = None;
        }
    }

    /// A backoff that does not reach past the budget of a silent portal (the next
    /// [`Silence::exhausted`] then gives up).
    pub(super) fn cap(&self, wait: Duration) -> Duration {
        match self.since {
            Some(t) => wait.min(self.budget.saturating_sub(t.elapsed())),
            None => wait,
        }
    }

    /// How long the call has run.
    pub(super) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The error of a call that gave up after `attempts`, `last` being the last problem.
    pub(super) fn gave_up(
        &self,
        portal: String,
        method: &str,
        attempts: u32,
        last: String,
    ) -> ExtractError {
        ExtractError::GaveUp {
            portal,
            method: method.to_string(),
            attempts,
            waited: self.since.map_or(self.started.elapsed(), |t| t.elapsed()),
            budget: self.budget,
            last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_silence_runs_the_clock() {
        let mut s = Silence::new(Duration::from_secs(10));
        assert!(!s.exhausted());
        assert_eq!(s.cap(Duration::from_secs(60)), Duration::from_secs(60));
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(11))
            .expect("the clock has run for 11 s");
        s.observe(true, long_ago);
        assert!(s.exhausted());
        assert_eq!(s.cap(Duration::from_secs(60)), Duration::ZERO);
        assert_eq!(s.timeout(Duration::from_secs(65)), MIN_ATTEMPT_TIME);
        // A later silent attempt does not restart the clock; an answer does.
        s.observe(true, Instant::now());
        assert!(s.exhausted());
        s.observe(false, Instant::now());
        assert!(!s.exhausted());
        assert_eq!(s.timeout(Duration::from_secs(65)), Duration::from_secs(10));
    }
}

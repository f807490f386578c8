//! Offline events (OAuth applications, docs/bitrix24-api.md §7): every `offline_poll`,
//! `event.offline.get` with `clear=0` reserves the waiting events under a process ID; they
//! are queued durably, and only then does `event.offline.clear` remove them from the
//! portal, in the same `batch` request as the next poll's get: one request per poll. Where
//! the reader is ([`Step`]) is kept in `b24sync_state`, so after a crash the next poll asks
//! for a reserved process's events again (a repeat coalesces in the queue) or clears a
//! queued one. Also the OAuth token keep-alive.

use std::sync::Arc;
use std::time::Duration;

use crate::extract::client::Auth;
use crate::extract::portal::events::{clear_and_get_offline, offline_events, OfflineEvent};
use crate::store::QueuedEvent;

use super::inbound::crm_event;
use super::{now_ms, Service, ENTITIES};

/// `b24sync_state` key: where the offline reader is (see [`Step`]).
pub const OFFLINE_PROCESS_KEY: &str = "serve.offline_process_id";
/// Events asked for per poll (the portal's default page).
const PER_POLL: u32 = 50;

/// Where the reader is with the portal's offline queue.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Nothing reserved.
    Idle,
    /// Events reserved under this process ID, perhaps not queued here yet: read them again.
    Reserved(String),
    /// Events of this process queued here: clear them (with the next get).
    Queued(String),
}

impl Step {
    fn parse(text: Option<&str>) -> Step {
        match text.unwrap_or("").split_once(':') {
            Some(("reserved", pid)) if !pid.is_empty() => Step::Reserved(pid.to_string()),
            Some(("queued", pid)) if !pid.is_empty() => Step::Queued(pid.to_string()),
            _ => Step::Idle,
        }
    }

    fn text(&self) -> String {
        match self {
            Step::Idle => String::new(),
            Step::Reserved(p) => format!("reserved:{p}"),
            Step::Queued(p) => format!("queued:{p}"),
        }
    }
}

pub(super) async fn run(service: Arc<Service>) {
    let Some(every) = service.opts.offline_poll else {
        return;
    };
    if !matches!(service.client.auth(), Auth::OAuth(_)) {
        tracing::warn!(
            "--offline-poll needs an OAuth application (--client-id): offline events are off"
        );
        return;
    }
    let mut step = match service.stores.state.read_state(OFFLINE_PROCESS_KEY).await {
        Ok(p) => Step::parse(p.as_deref()),
        Err(e) => {
            tracing::warn!("cannot read {OFFLINE_PROCESS_KEY}: {e}");
            Step::Idle
        }
    };
    tracing::info!(every_s = every.as_secs_f64(), "polling offline events");
    loop {
        let more = match poll_once(&service, &mut step).await {
            Ok(n) => n >= PER_POLL as usize,
            Err(e) => {
                tracing::warn!("offline events: {e}");
                false
            }
        };
        if more {
            continue;
        }
        tokio::select! {
            _ = service.cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// One poll, one request: how many events came.
async fn poll_once(service: &Service, step: &mut Step) -> Result<usize, String> {
    let client = &service.client;
    let (pid, events) = match step.clone() {
        Step::Idle => offline_events(client, PER_POLL, None).await,
        Step::Reserved(pid) => offline_events(client, PER_POLL, Some(&pid))
            .await
            .map(|(p, e)| (p.or(Some(pid)), e)),
        Step::Queued(pid) => clear_and_get_offline(client, &pid, PER_POLL).await,
    }
    .map_err(|e| e.to_string())?;
    let Some(pid) = pid.filter(|_| !events.is_empty()) else {
        if !events.is_empty() {
            return Err("event.offline.get returned events without a process_id".into());
        }
        // Nothing reserved now (a queued process was cleared by this request).
        move_to(service, step, Step::Idle).await?;
        return Ok(0);
    };
    move_to(service, step, Step::Reserved(pid.clone())).await?;
    let queued = to_queue(service, &events);
    let n = queued.len();
    service
        .stores
        .queue
        .enqueue(queued)
        .await
        .map_err(|e| format!("cannot queue {n} offline event(s) (read again next poll): {e}"))?;
    for _ in 0..n {
        service.metrics.event("queued");
    }
    service.wake.notify_one();
    move_to(service, step, Step::Queued(pid)).await?;
    tracing::debug!(events = events.len(), queued = n, "offline events queued");
    Ok(events.len())
}

/// The events of served entity types, as queue rows (the others are counted as ignored).
fn to_queue(service: &Service, events: &[OfflineEvent]) -> Vec<QueuedEvent> {
    let at_ms = now_ms();
    let mut queued = Vec::new();
    for e in events {
        match (crm_event(&e.event.to_ascii_uppercase()), e.id) {
            (Some((entity, action)), Some(id)) if ENTITIES.contains(&entity.as_str()) && id > 0 => {
                queued.push(QueuedEvent {
                    entity,
                    id,
                    action,
                    at_ms,
                })
            }
            _ => service.metrics.event("ignored"),
        }
    }
    queued
}

/// Record the reader's step before acting on it.
async fn move_to(service: &Service, step: &mut Step, next: Step) -> Result<(), String> {
    if *step == next {
        return Ok(());
    }
    service
        .stores
        .state
        .write_state(OFFLINE_PROCESS_KEY, &next.text())
        .await
        .map_err(|e| {
            format!("cannot keep the offline reader's place (asked again next poll): {e}")
        })?;
    *step = next;
    Ok(())
}

/// `--keep-token-fresh`: renew the OAuth tokens a few minutes before they expire, so a
/// quiet service never finds its refresh token expired; the token lock makes one refresh
/// happen at a time, whoever else (a `sync`, `token refresh`) wants one.
pub(super) async fn keep_token_fresh(service: Arc<Service>) {
    if !service.opts.keep_token_fresh {
        return;
    }
    let Auth::OAuth(session) = service.client.auth().clone() else {
        tracing::warn!("--keep-token-fresh needs an OAuth application (--client-id); ignored");
        return;
    };
    const AHEAD_SECS: i64 = 300;
    loop {
        let left = session.expires_in_secs().await;
        let wait = Duration::from_secs((left - AHEAD_SECS).clamp(5, 3600) as u64);
        tokio::select! {
            _ = service.cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match session.refresh_if_expiring(AHEAD_SECS).await {
            Ok(true) => tracing::info!("renewed the OAuth tokens before they expired"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!("could not renew the OAuth tokens: {e}");
                tokio::select! {
                    _ = service.cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_s_place_reads_back() {
        for step in [
            Step::Idle,
            Step::Reserved("abc".into()),
            Step::Queued("def".into()),
        ] {
            assert_eq!(Step::parse(Some(&step.text())), step);
        }
        assert_eq!(Step::parse(None), Step::Idle);
        assert_eq!(Step::parse(Some("queued:")), Step::Idle);
    }
}

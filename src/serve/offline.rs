//! Offline events (OAuth applications, docs/bitrix24-api.md §7): every `offline_poll`,
//! `event.offline.get` with `clear=0` reserves the waiting events under a process ID; they
//! are queued durably, and only then `event.offline.clear` removes them from the portal.
//! The process ID is kept in `b24sync_state` until cleared, so after a crash the next
//! poll asks for that process's events again (a repeat coalesces in the queue). A quiet
//! portal costs one request per poll. Also the OAuth token keep-alive.

use std::sync::Arc;
use std::time::Duration;

use crate::extract::client::{Auth, ExtractError};
use crate::extract::portal::events::{clear_offline, offline_events};
use crate::store::QueuedEvent;

use super::inbound::crm_event;
use super::{now_ms, Service, ENTITIES};

/// `b24sync_state` key: the process ID whose events are reserved but not yet cleared.
pub const OFFLINE_PROCESS_KEY: &str = "serve.offline_process_id";
/// Events asked for per poll (the portal's default page).
const PER_POLL: u32 = 50;

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
    let mut pending = match service.stores.state.read_state(OFFLINE_PROCESS_KEY).await {
        Ok(p) => p.filter(|p| !p.is_empty()),
        Err(e) => {
            tracing::warn!("cannot read {OFFLINE_PROCESS_KEY}: {e}");
            None
        }
    };
    tracing::info!(every_s = every.as_secs_f64(), "polling offline events");
    loop {
        let more = match poll_once(&service, &mut pending).await {
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

/// One poll: how many events came. `pending` is the process ID not cleared yet.
async fn poll_once(service: &Service, pending: &mut Option<String>) -> Result<usize, String> {
    let client = &service.client;
    let (pid, events) = offline_events(client, PER_POLL, pending.as_deref())
        .await
        .map_err(|e: ExtractError| e.to_string())?;
    if events.is_empty() {
        if pending.is_some() {
            forget(service, pending).await;
        }
        return Ok(0);
    }
    let Some(pid) = pid.or_else(|| pending.clone()) else {
        return Err("event.offline.get returned events without a process_id".into());
    };
    if pending.as_deref() != Some(pid.as_str()) {
        service
            .stores
            .state
            .write_state(OFFLINE_PROCESS_KEY, &pid)
            .await
            .map_err(|e| format!("cannot keep the process ID (the events stay reserved): {e}"))?;
        *pending = Some(pid.clone());
    }
    let at_ms = now_ms();
    let mut queued = Vec::new();
    for e in &events {
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
    let n = queued.len() as u64;
    service.stores.queue.enqueue(queued).await.map_err(|e| {
        format!("cannot queue {n} offline event(s) (asked for again next poll): {e}")
    })?;
    for _ in 0..n {
        service.metrics.event("queued");
    }
    service.wake.notify_one();
    clear_offline(client, &pid)
        .await
        .map_err(|e| format!("queued, but event.offline.clear failed (cleared next poll): {e}"))?;
    forget(service, pending).await;
    tracing::debug!(
        events = events.len(),
        queued = n,
        "offline events queued and cleared"
    );
    Ok(events.len())
}

async fn forget(service: &Service, pending: &mut Option<String>) {
    match service
        .stores
        .state
        .write_state(OFFLINE_PROCESS_KEY, "")
        .await
    {
        Ok(()) => *pending = None,
        Err(e) => tracing::warn!("cannot forget the cleared process ID: {e}"),
    }
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

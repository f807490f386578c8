//! The worker: drains `b24sync_event_queue` in micro-batches, one entity type at a time.
//! Each row is one record however many events named it; a micro-batch is re-read in one
//! `batch` request (up to 2,500 records) and loaded under the run lock, taking turns with
//! the reconcile. A processed row is removed at the revision read (an event that came
//! meanwhile keeps it queued); a failed micro-batch stays queued with one attempt more and
//! the reason, and a record out of attempts gets a row in the error table.

use std::sync::Arc;
use std::time::Duration;

use crate::model::LeadId;
use crate::run::{self, ChangesOutcome, RunError};
use crate::schema::{Entity, LEAD};
use crate::store::{QueueItem, StoreError};

use super::{now_ms, Service, ENTITIES};

/// Longest pause after failures in a row.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub(super) async fn run(service: Arc<Service>) {
    let mut backoff = Duration::ZERO;
    loop {
        if service.cancel.is_cancelled() {
            return;
        }
        let mut busy = false;
        let mut failed = false;
        for entity in ENTITIES.iter() {
            match drain_once(&service, entity).await {
                Ok(0) => {}
                Ok(_) => busy = true,
                Err(()) => failed = true,
            }
        }
        if failed {
            backoff = (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
            tokio::select! {
                _ = service.cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            continue;
        }
        backoff = Duration::ZERO;
        if busy {
            continue;
        }
        tokio::select! {
            _ = service.cancel.cancelled() => return,
            _ = service.wake.notified() => {}
            _ = tokio::time::sleep(service.opts.idle_poll) => {}
        }
    }
}

/// One micro-batch of `entity`: how many rows were processed (Err: it failed, logged).
async fn drain_once(service: &Service, entity: &str) -> Result<usize, ()> {
    let queue = &service.stores.queue;
    let items = match queue.peek_queue(entity, service.opts.batch_ids).await {
        Ok(items) => items,
        Err(e) => {
            tracing::warn!(entity, "cannot read the event queue: {e}");
            return Err(());
        }
    };
    if items.is_empty() {
        return Ok(0);
    }
    // Let a burst gather: read once the oldest waiting event is `batch_window` old.
    let oldest = items.iter().map(|i| i.first_queued_ms).min().unwrap_or(0);
    let window = i64::try_from(service.opts.batch_window.as_millis()).unwrap_or(i64::MAX);
    let wait = window.saturating_sub(now_ms().saturating_sub(oldest));
    if wait > 0 {
        let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
        tokio::select! {
            _ = service.cancel.cancelled() => return Ok(0),
            _ = tokio::time::sleep(wait) => {}
        }
    }
    let result = {
        let _turn = service.turn.lock().await;
        apply_locked(service, entity).await
    };
    match result {
        Ok((_, None)) => Ok(0),
        Ok((items, Some(outcome))) => {
            done(service, entity, &items, &outcome).await?;
            Ok(items.len())
        }
        Err(RunError::Load(e @ StoreError::LockBusy { .. })) => {
            // Another process's sync: not the records' fault, no attempt is counted.
            tracing::info!(entity, "events wait for the run lock: {e}");
            Err(())
        }
        Err(e) => {
            // The rows read under the lock may differ from the first look; count the
            // attempt on what is queued now.
            let items = queue
                .peek_queue(entity, service.opts.batch_ids)
                .await
                .unwrap_or(items);
            failed(service, entity, &items, &e.to_string()).await;
            Err(())
        }
    }
}

/// Holding the run lock, read the micro-batch (again: the events that came while waiting
/// for the lock coalesce into it, so a flood is read once) and re-read and load it.
async fn apply_locked(
    service: &Service,
    entity: &str,
) -> Result<(Vec<QueueItem>, Option<ChangesOutcome>), RunError> {
    let guard = service.stores.lock.lock_run(service.sync.lock_wait).await?;
    let result = async {
        let items = service
            .stores
            .queue
            .peek_queue(entity, service.opts.batch_ids)
            .await?;
        if items.is_empty() {
            return Ok((items, None));
        }
        let outcome = apply(service, entity, &items).await?;
        Ok((items, Some(outcome)))
    }
    .await;
    if let Err(e) = guard.release().await {
        tracing::warn!("could not release the run lock: {e}");
    }
    result
}

async fn apply(
    service: &Service,
    entity: &str,
    items: &[QueueItem],
) -> Result<ChangesOutcome, RunError> {
    let ctx = {
        let mut cached = service.ctx.lock().await;
        match cached.as_ref() {
            Some(ctx) => ctx.clone(),
            None => {
                let ctx = run::change_context(&service.client, &service.sync).await?;
                *cached = Some(ctx.clone());
                ctx
            }
        }
    };
    let Some(kind) = Entity::by_name(entity) else {
        return Err(RunError::Internal(format!(
            "the event worker has no re-read for entity type {entity:?}"
        )));
    };
    // A record ID is an int: a larger number names no record (its row is parked).
    let ids: Vec<LeadId> = items
        .iter()
        .filter_map(|i| LeadId::try_from(i.id).ok())
        .collect();
    let odd: Vec<i64> = items
        .iter()
        .map(|i| i.id)
        .filter(|id| LeadId::try_from(*id).is_err())
        .collect();
    let why = format!("the ID is not a {} ID", kind.name);
    run::park_failed(&service.run_stores, kind, &odd, &why).await?;
    run::apply_changes(
        &service.client,
        &service.run_stores,
        &service.sync,
        &ctx,
        (kind, &ids),
    )
    .await
}

/// The micro-batch is in: remove its rows (at the revision read) and count.
async fn done(
    service: &Service,
    entity: &str,
    items: &[QueueItem],
    outcome: &ChangesOutcome,
) -> Result<(), ()> {
    let processed: Vec<(i64, i64)> = items.iter().map(|i| (i.id, i.revision)).collect();
    if let Err(e) = service
        .stores
        .queue
        .remove_processed(entity, processed)
        .await
    {
        // The rows are loaded; left queued they are only read once more.
        tracing::warn!(
            entity,
            "loaded, but cannot remove the rows from the event queue: {e}"
        );
        return Err(());
    }
    let m = &service.metrics;
    m.records(entity, "loaded", outcome.loaded);
    m.records(entity, "deleted", outcome.deleted);
    let now = now_ms();
    for i in items {
        m.lag((now - i.first_queued_ms) as f64 / 1000.0);
    }
    tracing::info!(
        entity,
        records = items.len(),
        loaded = outcome.loaded,
        changed = outcome.changed,
        deleted = outcome.deleted,
        "events applied"
    );
    Ok(())
}

/// The micro-batch failed: one attempt more for each row; the rows out of attempts get a
/// row in the error table and leave the queue.
async fn failed(service: &Service, entity: &str, items: &[QueueItem], reason: &str) {
    tracing::warn!(
        entity,
        records = items.len(),
        "applying events failed (they stay queued): {reason}"
    );
    let max = service.opts.max_attempts.max(1);
    let (spent, again): (Vec<&QueueItem>, Vec<&QueueItem>) =
        items.iter().partition(|i| i.attempts + 1 >= max);
    let queue = &service.stores.queue;
    let log = |what: &str, e: StoreError| tracing::warn!(entity, "{what}: {e}");
    let ids: Vec<i64> = again.iter().map(|i| i.id).collect();
    if let Err(e) = queue.mark_failed(entity, ids, reason).await {
        log("cannot count the failed attempt in the event queue", e);
    }
    if spent.is_empty() {
        return;
    }
    let ids: Vec<i64> = spent.iter().map(|i| i.id).collect();
    let why = format!("{} attempts, the last: {reason}", max);
    let kind = Entity::by_name(entity).unwrap_or(LEAD);
    match run::park_failed(&service.run_stores, kind, &ids, &why).await {
        Ok(()) => {
            service.metrics.records(entity, "parked", ids.len() as u64);
            tracing::warn!(
                entity,
                records = ids.len(),
                "records out of attempts: rows in {}",
                kind.error_table
            );
            let rows: Vec<(i64, i64)> = spent.iter().map(|i| (i.id, i.revision)).collect();
            if let Err(e) = queue.remove_processed(entity, rows).await {
                log("cannot remove the parked rows from the event queue", e);
            }
        }
        Err(e) => {
            tracing::warn!(
                entity,
                "cannot park the records out of attempts (they stay queued): {e}"
            );
            if let Err(e) = queue.mark_failed(entity, ids, reason).await {
                log("cannot count the failed attempt in the event queue", e);
            }
        }
    }
}

//! `EventQueue` (`b24sync_event_queue`, the durable queue of `b24sync serve`): events queued
//! in one transaction, a flood of one ID coalesced into one row, rows removed only at the
//! revision read, failures counted, depth and oldest age.

use b24sync::store::{QueuedAction, QueuedEvent};

use crate::backend::{Backend, Kind};

fn event(entity: &str, id: i64, action: QueuedAction, at_ms: i64) -> QueuedEvent {
    QueuedEvent {
        entity: entity.into(),
        id,
        action,
        at_ms,
    }
}

pub async fn queue_coalesces_and_removes_only_what_was_read(kind: Kind) {
    let b = Backend::ready(kind).await;
    let q = &b.stores.queue;
    assert_eq!(q.queue_depth().await.expect("depth").rows, 0);
    assert!(q.peek_queue("lead", 10).await.expect("peek").is_empty());

    // A flood of the same lead, another lead, and a contact (another entity type).
    let mut flood: Vec<QueuedEvent> = (0..100)
        .map(|i| event("lead", 7, QueuedAction::Change, 1_000 + i))
        .collect();
    flood.push(event("lead", 3, QueuedAction::Change, 1_050));
    flood.push(event("contact", 7, QueuedAction::Change, 900));
    q.enqueue(flood).await.expect("enqueue");
    q.enqueue(vec![event("lead", 3, QueuedAction::Delete, 2_000)])
        .await
        .expect("enqueue");

    let depth = q.queue_depth().await.expect("depth");
    assert_eq!(
        (depth.rows, depth.oldest_ms, depth.failed),
        (3, Some(900), 0)
    );
    let leads = q.peek_queue("lead", 10).await.expect("peek");
    assert_eq!(leads.len(), 2, "one row per lead: {leads:?}");
    let (seven, three) = (&leads[0], &leads[1]);
    assert_eq!(
        (
            seven.id,
            seven.action,
            seven.first_queued_ms,
            seven.last_queued_ms,
            seven.revision
        ),
        (7, QueuedAction::Change, 1_000, 1_099, 100)
    );
    assert_eq!(
        (
            three.id,
            three.action,
            three.first_queued_ms,
            three.last_queued_ms
        ),
        (3, QueuedAction::Delete, 1_050, 2_000),
        "the latest action wins, the first time stays"
    );
    assert_eq!(q.peek_queue("lead", 1).await.expect("peek").len(), 1);

    // Lead 7 is queued again after it was read: removing the revision read keeps it.
    q.enqueue(vec![event("lead", 7, QueuedAction::Change, 3_000)])
        .await
        .expect("enqueue");
    let removed = q
        .remove_processed("lead", vec![(7, seven.revision), (3, three.revision)])
        .await
        .expect("remove");
    assert_eq!(removed, 1);
    let left = q.peek_queue("lead", 10).await.expect("peek");
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].id, left[0].revision), (7, 101));
    assert_eq!(q.peek_queue("contact", 10).await.expect("peek").len(), 1);

    // Reopened, the queue is still there (it is durable).
    let again = b.open_again().await;
    assert_eq!(again.queue.queue_depth().await.expect("depth").rows, 2);
}

pub async fn queue_counts_failures_and_puts_them_last(kind: Kind) {
    let b = Backend::ready(kind).await;
    let q = &b.stores.queue;
    q.enqueue(vec![
        event("lead", 1, QueuedAction::Change, 10),
        event("lead", 2, QueuedAction::Change, 20),
    ])
    .await
    .expect("enqueue");
    let long = "x".repeat(5_000);
    q.mark_failed("lead", vec![1], &long).await.expect("fail");
    q.mark_failed("lead", vec![1], "portal unreachable")
        .await
        .expect("fail");
    let items = q.peek_queue("lead", 10).await.expect("peek");
    assert_eq!(items.iter().map(|i| i.id).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(items[1].attempts, 2);
    assert_eq!(items[1].last_error.as_deref(), Some("portal unreachable"));
    assert_eq!(items[0].attempts, 0);
    let depth = q.queue_depth().await.expect("depth");
    assert_eq!(
        (depth.rows, depth.oldest_ms, depth.failed),
        (2, Some(10), 1)
    );
    // A long reason is cut to the column.
    q.mark_failed("lead", vec![2], &long).await.expect("fail");
    let items = q.peek_queue("lead", 10).await.expect("peek");
    let cut = items.iter().find(|i| i.id == 2).expect("lead 2");
    assert_eq!(
        cut.last_error.as_deref().map(str::len),
        Some(b24sync::schema::QUEUE_ERROR_CHARS)
    );
}

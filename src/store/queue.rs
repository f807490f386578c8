//! The durable event queue of `b24sync serve` (`b24sync_event_queue`): entities that Bitrix24
//! reported as changed or deleted, waiting to be read again. Keyed by entity type ("lead"
//! today; contacts and companies plug in with their own type), one row per (type, ID), so a
//! flood of events for the same record is read once.

use async_trait::async_trait;

use super::StoreError;

/// What an event said happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum QueuedAction {
    /// Added or updated: read it again.
    Change,
    /// Deleted: read it again; if the portal no longer has it, delete it here.
    Delete,
}

impl QueuedAction {
    /// As stored in `b24sync_event_queue.event_action`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueuedAction::Change => "change",
            QueuedAction::Delete => "delete",
        }
    }

    /// The stored text back (anything unknown reads as a change: re-reading is always safe).
    pub fn parse(text: &str) -> QueuedAction {
        if text.trim().eq_ignore_ascii_case("delete") {
            QueuedAction::Delete
        } else {
            QueuedAction::Change
        }
    }
}

/// One event to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEvent {
    /// "lead" (later "contact", "company"); at most `schema::QUEUE_ENTITY_CHARS`.
    pub entity: String,
    pub id: i64,
    pub action: QueuedAction,
    /// When it was received: UTC milliseconds since 1970.
    pub at_ms: i64,
}

/// One waiting row, as the worker reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    pub id: i64,
    /// The latest action queued for it.
    pub action: QueuedAction,
    /// The first and the latest event since it was last processed (UTC ms).
    pub first_queued_ms: i64,
    pub last_queued_ms: i64,
    /// Moves with every event; [`EventQueue::remove_processed`] removes a row only at the
    /// revision that was read.
    pub revision: i64,
    /// Failed processing attempts so far, and the last one's reason.
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// How full the queue is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepth {
    /// Rows waiting (every entity type).
    pub rows: u64,
    /// The oldest row's first event (UTC ms), if any.
    pub oldest_ms: Option<i64>,
    /// Rows whose processing failed at least once.
    pub failed: u64,
}

/// The queue's role. Queueing does not need the run lock (events arrive while a sync runs).
#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Queue these events in one transaction: committed when this returns Ok (a handler may
    /// then answer 200). An entity already waiting is coalesced: its action becomes the
    /// latest, its first time stays, its revision moves.
    async fn enqueue(&self, events: Vec<QueuedEvent>) -> Result<(), StoreError>;

    /// Up to `limit` waiting rows of `entity`, fewest attempts first, then oldest first.
    /// Reads only: a crash before [`EventQueue::remove_processed`] leaves them queued.
    async fn peek_queue(&self, entity: &str, limit: u32) -> Result<Vec<QueueItem>, StoreError>;

    /// Remove processed rows, each only at the `(id, revision)` that was read (a row queued
    /// again meanwhile stays). Returns how many went.
    async fn remove_processed(
        &self,
        entity: &str,
        done: Vec<(i64, i64)>,
    ) -> Result<u64, StoreError>;

    /// Count one failed attempt for these rows, with the reason (cut to fit its column).
    async fn mark_failed(&self, entity: &str, ids: Vec<i64>, error: &str)
        -> Result<(), StoreError>;

    /// How many rows wait and since when.
    async fn queue_depth(&self) -> Result<QueueDepth, StoreError>;
}

//! The event queue (`b24sync_event_queue`, migration 6) in the embedded database: each call
//! one transaction on the shared connection (see `crate::store::EventQueue`).

use async_trait::async_trait;
use rusqlite::params;

use super::{db_err, sql, SqliteSink};
use crate::schema::{truncate_utf16, QUEUE_ERROR_CHARS};
use crate::store::{EventQueue, QueueDepth, QueueItem, QueuedAction, QueuedEvent, StoreError};

#[async_trait]
impl EventQueue for SqliteSink {
    async fn enqueue(&self, events: Vec<QueuedEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let context = "queueing events in b24sync_event_queue";
        self.with_schema(context, move |conn| {
            let tx = conn.transaction().map_err(db_err(context))?;
            {
                let mut stmt = tx
                    .prepare_cached(sql::QUEUE_ENQUEUE)
                    .map_err(db_err(context))?;
                for e in &events {
                    stmt.execute(params![e.entity, e.id, e.action.as_str(), e.at_ms])
                        .map_err(db_err(context))?;
                }
            }
            tx.commit().map_err(db_err(context))
        })
        .await
    }

    async fn peek_queue(&self, entity: &str, limit: u32) -> Result<Vec<QueueItem>, StoreError> {
        let context = "reading b24sync_event_queue";
        let entity = entity.to_string();
        self.with_ready(context, move |conn| {
            let mut stmt = conn
                .prepare_cached(sql::QUEUE_PEEK)
                .map_err(db_err(context))?;
            let rows = stmt
                .query_map(params![entity, limit], |r| {
                    Ok(QueueItem {
                        id: r.get(0)?,
                        action: QueuedAction::parse(&r.get::<_, String>(1)?),
                        first_queued_ms: r.get(2)?,
                        last_queued_ms: r.get(3)?,
                        revision: r.get(4)?,
                        attempts: r.get(5)?,
                        last_error: r.get(6)?,
                    })
                })
                .map_err(db_err(context))?;
            rows.collect::<Result<_, _>>().map_err(db_err(context))
        })
        .await
    }

    async fn remove_processed(
        &self,
        entity: &str,
        done: Vec<(i64, i64)>,
    ) -> Result<u64, StoreError> {
        if done.is_empty() {
            return Ok(0);
        }
        let context = "removing processed rows of b24sync_event_queue";
        let entity = entity.to_string();
        self.with_schema(context, move |conn| {
            let tx = conn.transaction().map_err(db_err(context))?;
            let mut removed = 0u64;
            {
                let mut stmt = tx
                    .prepare_cached(sql::QUEUE_REMOVE)
                    .map_err(db_err(context))?;
                for (id, revision) in &done {
                    removed += stmt
                        .execute(params![entity, id, revision])
                        .map_err(db_err(context))? as u64;
                }
            }
            tx.commit().map_err(db_err(context))?;
            Ok(removed)
        })
        .await
    }

    async fn mark_failed(
        &self,
        entity: &str,
        ids: Vec<i64>,
        error: &str,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let context = "marking rows of b24sync_event_queue as failed";
        let entity = entity.to_string();
        let error = truncate_utf16(error, QUEUE_ERROR_CHARS).to_string();
        self.with_schema(context, move |conn| {
            let tx = conn.transaction().map_err(db_err(context))?;
            {
                let mut stmt = tx
                    .prepare_cached(sql::QUEUE_FAIL)
                    .map_err(db_err(context))?;
                for id in &ids {
                    stmt.execute(params![entity, id, error])
                        .map_err(db_err(context))?;
                }
            }
            tx.commit().map_err(db_err(context))
        })
        .await
    }

    async fn queue_depth(&self) -> Result<QueueDepth, StoreError> {
        let context = "counting b24sync_event_queue";
        self.with_ready(context, move |conn| {
            conn.query_row(sql::QUEUE_DEPTH, [], |r| {
                Ok(QueueDepth {
                    rows: r.get::<_, i64>(0)?.max(0) as u64,
                    oldest_ms: r.get(1)?,
                    failed: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })
            .map_err(db_err(context))
        })
        .await
    }
}

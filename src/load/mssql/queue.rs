//! The event queue (`dbo.b24sync_event_queue`, migration 0011) on SQL Server: each call one
//! transaction on a pooled connection, parameterised statements from `sql/mssql/queue_*.sql`
//! (see `crate::store::EventQueue`). Queueing takes no run lock and checks none: events are
//! queued while a sync (or the worker) holds it, and only b24sync's own table is written.

use async_trait::async_trait;

use super::{run, sql, Client, MssqlSink, TxError};
use crate::schema::{truncate_utf16, QUEUE_ERROR_CHARS};
use crate::store::{EventQueue, QueueDepth, QueueItem, QueuedAction, QueuedEvent, StoreError};

impl MssqlSink {
    /// Run `body` between BEGIN and COMMIT on a pooled connection; rolled back on failure.
    async fn queue_tx<T, F>(&self, context: &str, body: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut Client) -> futures::future::BoxFuture<'c, Result<T, TxError>>,
    {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        let result = async {
            run(c, sql::TX_BEGIN).await?;
            let out = body(&mut *c).await?;
            run(c, sql::TX_COMMIT).await?;
            Ok::<T, TxError>(out)
        }
        .await;
        match result {
            Ok(out) => Ok(out),
            Err(e) => {
                self.rollback(c, context).await;
                Err(self.tx_error(context, &e))
            }
        }
    }
}

#[async_trait]
impl EventQueue for MssqlSink {
    async fn enqueue(&self, events: Vec<QueuedEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.queue_tx("queueing events in dbo.b24sync_event_queue", move |c| {
            Box::pin(async move {
                for e in &events {
                    c.execute(
                        sql::QUEUE_ENQUEUE,
                        &[&e.entity.as_str(), &e.id, &e.action.as_str(), &e.at_ms],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn peek_queue(&self, entity: &str, limit: u32) -> Result<Vec<QueueItem>, StoreError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        let limit = i64::from(limit);
        let read = async {
            let rows = c
                .query(sql::QUEUE_PEEK, &[&entity, &limit])
                .await?
                .into_first_result()
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(QueueItem {
                    id: r.try_get::<i64, _>("entity_id")?.unwrap_or(0),
                    action: QueuedAction::parse(
                        r.try_get::<&str, _>("event_action")?.unwrap_or("change"),
                    ),
                    first_queued_ms: r.try_get::<i64, _>("first_queued_ms")?.unwrap_or(0),
                    last_queued_ms: r.try_get::<i64, _>("last_queued_ms")?.unwrap_or(0),
                    revision: r.try_get::<i64, _>("revision")?.unwrap_or(0),
                    attempts: r
                        .try_get::<i32, _>("attempts")?
                        .and_then(|a| u32::try_from(a).ok())
                        .unwrap_or(0),
                    last_error: r.try_get::<&str, _>("last_error")?.map(str::to_string),
                });
            }
            Ok::<_, tiberius::error::Error>(out)
        }
        .await;
        read.map_err(|e| self.db_error("reading dbo.b24sync_event_queue", &e))
    }

    async fn remove_processed(
        &self,
        entity: &str,
        done: Vec<(i64, i64)>,
    ) -> Result<u64, StoreError> {
        if done.is_empty() {
            return Ok(0);
        }
        let entity = entity.to_string();
        self.queue_tx(
            "removing processed rows of dbo.b24sync_event_queue",
            move |c| {
                Box::pin(async move {
                    let mut removed = 0u64;
                    for (id, revision) in &done {
                        let r = c
                            .execute(sql::QUEUE_REMOVE, &[&entity.as_str(), id, revision])
                            .await?;
                        removed += r.total();
                    }
                    Ok(removed)
                })
            },
        )
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
        let entity = entity.to_string();
        let error = truncate_utf16(error, QUEUE_ERROR_CHARS).to_string();
        self.queue_tx(
            "marking rows of dbo.b24sync_event_queue as failed",
            move |c| {
                Box::pin(async move {
                    for id in &ids {
                        c.execute(sql::QUEUE_FAIL, &[&entity.as_str(), id, &error.as_str()])
                            .await?;
                    }
                    Ok(())
                })
            },
        )
        .await
    }

    async fn queue_depth(&self) -> Result<QueueDepth, StoreError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        let read = async {
            let row = c.simple_query(sql::QUEUE_DEPTH).await?.into_row().await?;
            let Some(r) = row else {
                return Ok(QueueDepth::default());
            };
            Ok::<_, tiberius::error::Error>(QueueDepth {
                rows: r.try_get::<i64, _>("queued")?.unwrap_or(0).max(0) as u64,
                oldest_ms: r.try_get::<i64, _>("oldest_ms")?,
                failed: r.try_get::<i64, _>("failed")?.unwrap_or(0).max(0) as u64,
            })
        }
        .await;
        read.map_err(|e| self.db_error("counting dbo.b24sync_event_queue", &e))
    }
}

//! The SQL Server sink as an OAuth [`TokenStore`], with the embedded database's semantics
//! (`src/load/sqlite/tokens.rs`; the row rules both use are in `src/load/oauth_row.rs`): the app's row in
//! `dbo.bitrix_oauth` (one per `client_id`, updated in place), and beside it, in
//! `dbo.b24sync_state` under `oauth:<client_id>`, the absolute expiry, the REST endpoint and
//! the OAuth server, which the contract table has no column for.
//!
//! The refresh lock is a session-owned `sp_getapplock` on `b24sync:oauth:<client_id>`, taken
//! on a connection of its own that the guard keeps for its life, so it is held from the
//! re-read through the refresh HTTP call to the write, across processes and machines. If the
//! process dies, its session ends and SQL Server frees the lock. The write is one
//! transaction (row and side record together), durable once it returns.

use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDateTime;

use super::{admin, conn::Target, run, server_text, sql, Client, MssqlSink};
use crate::load::oauth_row::{app_extra, app_from_row, state_key, OAuthRow};
use crate::model::oauth::StoredApp;
use crate::store::{StoreError, TokenLock, TokenStore};

/// How long `save_app` waits for a refresher of the same app.
const SAVE_LOCK_WAIT: Duration = Duration::from_secs(60);

/// The app lock's resource name (sp_getapplock takes up to 255 characters).
fn lock_resource(client_id: &str) -> String {
    format!("b24sync:oauth:{client_id}")
}

fn db_error(target: &Target, context: &str, e: &tiberius::error::Error) -> StoreError {
    StoreError::Database {
        context: context.to_string(),
        reason: target.scrub(&server_text(e)),
    }
}

#[async_trait]
impl TokenStore for MssqlSink {
    fn describe(&self) -> String {
        self.target.describe()
    }

    async fn load_app(&self, client_id: &str) -> Result<Option<StoredApp>, StoreError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        self.ensure_ready(c).await?;
        read_app(c, client_id)
            .await
            .map_err(|e| self.db_error("reading dbo.bitrix_oauth", &e))
    }

    async fn save_app(&self, app: &StoredApp) -> Result<(), StoreError> {
        let mut lock = self.lock_app(&app.client_id, SAVE_LOCK_WAIT).await?;
        lock.write(app).await
    }

    async fn lock_app(
        &self,
        client_id: &str,
        wait: Duration,
    ) -> Result<Box<dyn TokenLock>, StoreError> {
        {
            // The side record lives in b24sync_state (migration 1): say "run init-db" now
            // rather than fail at the write, after the refresh token was spent.
            let mut pooled = self.conn().await?;
            self.ensure_ready(&mut pooled).await?;
        }
        let mut client = self.dedicated("the OAuth refresh lock").await?;
        let resource = lock_resource(client_id);
        let wait_ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        let code = async {
            let row = client
                .query(sql::OAUTH_LOCK_ACQUIRE, &[&resource.as_str(), &wait_ms])
                .await?
                .into_row()
                .await?;
            Ok::<_, tiberius::error::Error>(row.and_then(|r| r.get::<i32, _>("result")))
        }
        .await;
        let context = "taking the OAuth refresh lock (sp_getapplock)";
        match code {
            Ok(Some(c)) if c >= 0 => Ok(Box::new(MssqlTokenLock {
                client: Some(client),
                resource,
                client_id: client_id.to_string(),
                target: self.target.clone(),
            })),
            // -1 timeout is the usual one; -2 cancelled, -3 deadlock victim: also "not now".
            Ok(Some(_)) => {
                let _ = client.close().await;
                Err(StoreError::LockBusy {
                    target: format!("{} (OAuth app {client_id})", self.target.describe()),
                    waited_secs: wait.as_secs(),
                })
            }
            Ok(None) => {
                let _ = client.close().await;
                Err(StoreError::Database {
                    context: context.into(),
                    reason: "no result code returned".into(),
                })
            }
            Err(e) => {
                let _ = client.close().await;
                Err(self.db_error(context, &e))
            }
        }
    }
}

/// The held refresh lock and its connection (the pool stays free for batches).
struct MssqlTokenLock {
    /// Taken by `Drop`, which releases the lock and closes the session.
    client: Option<Client>,
    resource: String,
    client_id: String,
    target: Target,
}

impl MssqlTokenLock {
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        self.client.as_mut().ok_or_else(|| StoreError::Database {
            context: "using the OAuth refresh lock".into(),
            reason: "the lock's connection is gone".into(),
        })
    }
}

#[async_trait]
impl TokenLock for MssqlTokenLock {
    async fn read(&mut self) -> Result<Option<StoredApp>, StoreError> {
        let (target, client_id) = (self.target.clone(), self.client_id.clone());
        read_app(self.client()?, &client_id)
            .await
            .map_err(|e| db_error(&target, "reading dbo.bitrix_oauth", &e))
    }

    async fn write(&mut self, app: &StoredApp) -> Result<(), StoreError> {
        if app.client_id != self.client_id {
            return Err(StoreError::Database {
                context: "writing dbo.bitrix_oauth".into(),
                reason: "the lock is held for another client_id".into(),
            });
        }
        let target = self.target.clone();
        let c = self.client()?;
        if let Err(e) = write_app(c, app).await {
            // XACT_ABORT rolled back already, unless the connection broke; make sure the
            // session holds no open transaction while it keeps the lock.
            let _ = run(c, sql::ROLLBACK).await;
            return Err(db_error(&target, "writing dbo.bitrix_oauth", &e));
        }
        Ok(())
    }
}

impl Drop for MssqlTokenLock {
    fn drop(&mut self) {
        let Some(mut client) = self.client.take() else {
            return;
        };
        let resource = std::mem::take(&mut self.resource);
        // Drop cannot wait, so a task releases the lock and closes the session. Without a
        // runtime (the process is ending) the connection is just dropped: its session ends
        // and SQL Server frees a session-owned lock with it.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = client
                    .execute(sql::OAUTH_LOCK_RELEASE, &[&resource.as_str()])
                    .await
                {
                    tracing::debug!("releasing the OAuth refresh lock failed (closing its connection frees it): {e}");
                }
                let _ = client.close().await;
            });
        }
    }
}

async fn read_app(c: &mut Client, client_id: &str) -> tiberius::Result<Option<StoredApp>> {
    let row = c
        .query(sql::OAUTH_READ, &[&client_id])
        .await?
        .into_row()
        .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let s = |n: &str| -> tiberius::Result<Option<String>> {
        Ok(r.try_get::<&str, _>(n)?.map(str::to_string))
    };
    let oauth = OAuthRow {
        client_id: s("client_id")?,
        client_secret: s("client_secret")?,
        redirect_uri: s("redirect_uri")?,
        access_token: s("access_token")?,
        refresh_token: s("refresh_token")?,
        expires_in: s("expires_in")?,
        scope: s("scope")?,
        domain: s("domain")?,
        member_id: s("member_id")?,
        user_id: s("user_id")?,
        dateexec: r.try_get::<NaiveDateTime, _>("dateexec")?,
    };
    let extra = admin::read_state(c, &state_key(client_id)).await?;
    Ok(Some(app_from_row(client_id, oauth, extra.as_deref())))
}

async fn write_app(c: &mut Client, app: &StoredApp) -> tiberius::Result<()> {
    let t = &app.tokens;
    let (dateexec, extra) = app_extra(app);
    let key = state_key(&app.client_id);
    // No NULL parameter (see oauth_write.sql): a flag says whether to set redirect_uri.
    let (set_redirect, redirect) = match app.redirect_uri.as_deref() {
        Some(uri) => (1i32, uri),
        None => (0i32, ""),
    };
    c.execute(
        sql::OAUTH_WRITE,
        &[
            &app.client_id.as_str(),
            &app.client_secret.expose(),
            &t.access_token.expose(),
            &t.refresh_token.expose(),
            &t.expires_in.as_str(),
            &t.scope.as_str(),
            &t.domain.as_str(),
            &t.member_id.as_str(),
            &set_redirect,
            &redirect,
            &t.user_id.as_str(),
            &dateexec,
            &key.as_str(),
            &extra.as_str(),
        ],
    )
    .await?;
    Ok(())
}

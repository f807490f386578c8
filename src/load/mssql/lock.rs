//! The SQL Server run lock: `sp_getapplock` on a dedicated session held for the run, plus a
//! token lock only this hold knows. Every write transaction checks the token inside the
//! transaction and holds a shared lock on `b24sync:writes` that a later run's barrier waits
//! for (`sql/mssql/lock_guard.sql`), so a run whose lock session died commits nothing more.
//!
//! The session is owned by the [`RunLockGuard`]s of one sink (taking the lock again through
//! the same sink shares the hold, see `load::held`). Dropping the last guard drops the
//! connection, which ends the session, and SQL Server frees the session-owned locks with
//! it: no async work is needed on drop. `release` asks the server first.

use std::time::Duration;

use async_trait::async_trait;

use super::{conn::Target, sql, Client, MssqlSink, TxError};
use crate::store::{HeldLock, RunLock, RunLockGuard, StoreError};

/// The held run lock: the session holding it (outside the pool, so the lock cannot be
/// handed to another task or released by a pool reaper), its token (see
/// `sql/mssql/lock_confirm.sql`) and the session's `@@SPID`.
pub(super) struct MssqlRunLock {
    client: Client,
    token: String,
    spid: i32,
    target: Target,
}

#[async_trait]
impl HeldLock for MssqlRunLock {
    async fn release(self: Box<Self>) -> Result<(), StoreError> {
        let MssqlRunLock {
            mut client,
            token,
            target,
            ..
        } = *self;
        // Closing the session frees the lock even if the release fails (a lock whose session
        // already died, say), so a failed release is only worth a log line.
        if let Err(e) = client.execute(sql::LOCK_RELEASE, &[&token.as_str()]).await {
            tracing::warn!(
                "releasing the run lock failed (closing its connection frees it): {}",
                target.scrub(&e.to_string())
            );
        }
        let _ = client.close().await;
        Ok(())
    }
}

#[async_trait]
impl RunLock for MssqlSink {
    async fn lock_run(&self, wait: Duration) -> Result<RunLockGuard, StoreError> {
        self.run_lock.guard(self.take_run_lock(wait)).await
    }
}

impl MssqlSink {
    /// The server session (`@@SPID`) holding this sink's run lock, while it holds one: for
    /// log lines and for a DBA (`sys.dm_tran_locks`), and for tests that end that session.
    pub fn run_lock_session(&self) -> Option<i32> {
        self.run_lock.current().map(|l| l.spid)
    }

    /// The token write transactions check (None: this sink holds no run lock).
    pub(super) fn token(&self) -> Option<String> {
        self.run_lock.current().map(|l| l.token.clone())
    }

    /// Open a dedicated session, take `sp_getapplock` on it, then the token only this hold
    /// knows and the `b24sync:writes` barrier (`sql/mssql/lock_confirm.sql`).
    async fn take_run_lock(&self, wait: Duration) -> Result<MssqlRunLock, StoreError> {
        let mut client = self.dedicated("the run lock").await?;
        let wait_ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        let code = async {
            let row = client
                .query(sql::LOCK_ACQUIRE, &[&wait_ms])
                .await?
                .into_row()
                .await?;
            Ok::<_, tiberius::error::Error>(row.and_then(|r| r.get::<i32, _>("result")))
        }
        .await
        .map_err(|e| self.db_error("taking the run lock (sp_getapplock)", &e))?;
        match code {
            Some(c) if c >= 0 => {
                let token = new_token();
                let confirmed = async {
                    let sets = client
                        .query(sql::LOCK_CONFIRM, &[&token.as_str(), &wait_ms])
                        .await?
                        .into_results()
                        .await?;
                    let row = sets.iter().rev().find_map(|s| s.first());
                    Ok::<_, tiberius::error::Error>((
                        confirm_verdict(
                            row.and_then(|r| r.get::<&str, _>("token_mode")),
                            row.and_then(|r| r.get::<&str, _>("barrier_mode")),
                        ),
                        row.and_then(|r| r.get::<i32, _>("spid")).unwrap_or(0),
                    ))
                }
                .await;
                match confirmed {
                    Ok((Ok(()), spid)) => {
                        tracing::debug!("run lock taken on session {spid}");
                        Ok(MssqlRunLock {
                            client,
                            token,
                            spid,
                            target: self.target.clone(),
                        })
                    }
                    // Closing the session frees the run lock it was granted.
                    Ok((Err(why), _)) => {
                        tracing::info!("run lock not confirmed: {why}");
                        let _ = client.close().await;
                        Err(StoreError::LockBusy {
                            target: self.target.describe(),
                            waited_secs: wait.as_secs(),
                        })
                    }
                    Err(e) => {
                        let _ = client.close().await;
                        Err(self.db_error("taking the run lock (lock_confirm.sql)", &e))
                    }
                }
            }
            // -1 timeout is the usual one; -2 cancelled, -3 deadlock victim: also "not now".
            Some(_) => {
                let _ = client.close().await;
                Err(StoreError::LockBusy {
                    target: self.target.describe(),
                    waited_secs: wait.as_secs(),
                })
            }
            None => Err(StoreError::Database {
                context: "taking the run lock (sp_getapplock)".into(),
                reason: "no result code returned".into(),
            }),
        }
    }
}

/// Inside an open transaction on `c`, before it writes: take the shared write lock and check
/// that this run's lock session still holds its token (`sql/mssql/lock_guard.sql` says why
/// that is enough). No token: this sink holds no run lock (tests, `errors clear`), nothing
/// to check.
pub(super) async fn check_lock(c: &mut Client, token: Option<&str>) -> Result<(), TxError> {
    let Some(token) = token else {
        return Ok(());
    };
    let sets = c
        .query(sql::LOCK_GUARD, &[&token])
        .await?
        .into_results()
        .await?;
    let row = sets.iter().rev().find_map(|s| s.first());
    guard_verdict(
        row.and_then(|r| r.get::<&str, _>("writes_mode")),
        row.and_then(|r| r.get::<i32, _>("token_free")),
    )
    .map_err(TxError::LockLost)
}

/// What `lock_guard.sql` answered: Ok only for a granted shared write lock (`writes_mode`
/// `Shared`) and a token still held by the run's lock session (`token_free` 0).
fn guard_verdict(writes_mode: Option<&str>, token_free: Option<i32>) -> Result<(), String> {
    match (writes_mode, token_free) {
        (Some(m), Some(0)) if m.eq_ignore_ascii_case("Shared") => Ok(()),
        (_, Some(1)) => Err(
            "the session that held it has ended (closed by the server, a \
             KILL, or a dropped network connection), so another run may be writing"
                .to_string(),
        ),
        (Some(_), Some(0)) => Err("another run is taking the run lock over (its barrier \
             did not let this transaction through within 30 s)"
            .to_string()),
        _ => Err("the lock check (lock_guard.sql) returned no answer".to_string()),
    }
}

/// What `lock_confirm.sql` answered: the token held and the barrier passed.
fn confirm_verdict(token_mode: Option<&str>, barrier_mode: Option<&str>) -> Result<(), String> {
    let held = |m: Option<&str>| m.is_some_and(|m| m.eq_ignore_ascii_case("Exclusive"));
    if !held(token_mode) {
        return Err("this run's token lock was not granted".to_string());
    }
    if !held(barrier_mode) {
        return Err("a previous run's write transactions did not end in time".to_string());
    }
    Ok(())
}

/// A fresh token resource for one hold of the run lock: random, so no other session ever
/// asks for it.
fn new_token() -> String {
    format!("b24sync:run:{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_goes_ahead_only_with_the_write_lock_and_the_token_held() {
        assert_eq!(guard_verdict(Some("Shared"), Some(0)), Ok(()));
        // The lock session ended: the token can be granted to anyone.
        let gone = guard_verdict(Some("Shared"), Some(1)).unwrap_err();
        assert!(gone.contains("session that held it has ended"), "{gone}");
        // Another run's barrier kept the shared lock from being granted.
        let taken = guard_verdict(Some("NoLock"), Some(0)).unwrap_err();
        assert!(taken.contains("another run"), "{taken}");
        assert!(guard_verdict(Some("NoLock"), Some(1)).is_err());
        assert!(guard_verdict(None, None).is_err());
    }

    #[test]
    fn the_lock_is_confirmed_only_with_token_and_barrier() {
        assert_eq!(
            confirm_verdict(Some("Exclusive"), Some("Exclusive")),
            Ok(())
        );
        assert!(confirm_verdict(Some("NoLock"), Some("Exclusive")).is_err());
        assert!(confirm_verdict(Some("Exclusive"), Some("NoLock"))
            .unwrap_err()
            .contains("previous run"));
        assert!(confirm_verdict(None, None).is_err());
    }

    #[test]
    fn tokens_are_distinct_and_fit_an_applock_name() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(
            a.starts_with("b24sync:run:") && a.len() == 28 && a.len() <= 255,
            "{a}"
        );
    }
}

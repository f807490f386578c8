//! `SchemaAdmin`, `RunLock`, `TokenStore`, `CallerLookup`.

use b24sync::schema::LEAD;
use std::time::{Duration, Instant};

use b24sync::store::{Diagnosis, StoreError};

use crate::backend::{Backend, Kind};
use crate::build::*;

fn find<'a>(report: &'a [Diagnosis], check: &str) -> &'a Diagnosis {
    report
        .iter()
        .find(|d| d.check == check)
        .unwrap_or_else(|| panic!("no {check} check in {report:?}"))
}

/// Take the run lock within `wait` (failing with `what`), and release it.
async fn takes_the_lock(stores: &b24sync::load::Stores, wait: Duration, what: &str) {
    stores
        .lock
        .lock_run(wait)
        .await
        .expect(what)
        .release()
        .await
        .expect("release");
}

pub async fn init_schema_is_idempotent(kind: Kind) {
    let b = Backend::fresh(kind).await;
    let first = b.stores.schema.init_schema().await.expect("init");
    assert!(!first.created.is_empty(), "{first:?}");
    assert!(first.warnings.is_empty(), "{first:?}");
    let tables = b.table_names().await;
    let again = b.stores.schema.init_schema().await.expect("second init");
    assert!(
        again.created.is_empty() && again.warnings.is_empty(),
        "{again:?}"
    );
    assert_eq!(b.table_names().await, tables);
}

pub async fn diagnose_passes_on_a_fresh_database(kind: Kind) {
    let b = Backend::ready(kind).await;
    let report = b.stores.schema.diagnose().await.expect("diagnose");
    assert_eq!(
        report.iter().map(|d| d.check.as_str()).collect::<Vec<_>>(),
        ["tables", "columns", "indexes", "duplicates", "permissions"]
    );
    for d in &report {
        assert!(d.ok, "{d:?}");
        assert!(d.fix.is_empty(), "{d:?}");
        assert!(!d.detail.is_empty(), "{d:?}");
    }
}

pub async fn diagnose_changes_nothing_on_an_empty_database(kind: Kind) {
    let b = Backend::fresh(kind).await;
    let report = b.stores.schema.diagnose().await.expect("diagnose");
    let tables = find(&report, "tables");
    assert!(!tables.ok);
    assert!(tables.detail.contains("bitrix_leads"), "{tables:?}");
    assert!(tables.fix.contains("b24sync init-db"), "{tables:?}");
    let indexes = find(&report, "indexes");
    assert!(
        !indexes.ok && indexes.fix.contains("b24sync init-db"),
        "{indexes:?}"
    );
    assert!(b.table_names().await.is_empty(), "diagnose created tables");
}

pub async fn diagnose_names_a_missing_table(kind: Kind) {
    let b = Backend::ready(kind).await;
    b.exec("DROP TABLE bitrix_lead_solution;").await;
    let report = b.stores.schema.diagnose().await.expect("diagnose");
    let tables = find(&report, "tables");
    assert!(!tables.ok);
    // SQL Server names the schema too.
    assert_eq!(
        tables.detail.replace("dbo.", ""),
        "missing: bitrix_lead_solution"
    );
    assert!(tables.fix.contains("b24sync init-db"), "{tables:?}");
    // Its index went with it (SQLite names the index; SQL Server the migration that makes
    // it); the other checks stand.
    let indexes = find(&report, "indexes");
    assert!(!indexes.ok, "{indexes:?}");
    if kind == Kind::Sqlite {
        assert!(
            indexes.detail.contains("ix_bitrix_lead_solution_lead"),
            "{indexes:?}"
        );
    }
    for name in ["columns", "duplicates", "permissions"] {
        assert!(find(&report, name).ok, "{report:?}");
    }
}

pub async fn one_run_at_a_time(kind: Kind) {
    let b = Backend::ready(kind).await;
    let other = b.open_again().await;
    let guard = b
        .stores
        .lock
        .lock_run(Duration::from_secs(1))
        .await
        .expect("first run gets the lock");

    let started = Instant::now();
    let err = other
        .lock
        .lock_run(Duration::from_millis(1500))
        .await
        .expect_err("second run waits, then gives up");
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "waited {:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, StoreError::LockBusy { waited_secs: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&b.name()), "{err}");

    // The holder can still load while it holds the lock.
    b.stores
        .batches
        .load_batch(batch(vec![lead(1, 0)]), now())
        .await
        .expect("load under the lock");

    guard.release().await.expect("release");
    let second = other
        .lock
        .lock_run(Duration::from_secs(1))
        .await
        .expect("free now");
    second.release().await.expect("release");
}

pub async fn closing_the_stores_releases_the_run_lock(kind: Kind) {
    let b = Backend::ready(kind).await;
    let holder = b.open_again().await;
    let guard = holder
        .lock
        .lock_run(Duration::from_secs(1))
        .await
        .expect("lock");
    // A run that goes away without releasing (its guard and its stores dropped) frees the
    // lock with them.
    drop(guard);
    drop(holder);
    takes_the_lock(
        &b.stores,
        Duration::from_secs(10),
        "freed when the holder went",
    )
    .await;
}

pub async fn dropping_the_guard_releases_the_run_lock(kind: Kind) {
    let b = Backend::ready(kind).await;
    let other = b.open_again().await;
    let guard = b
        .stores
        .lock
        .lock_run(Duration::from_secs(1))
        .await
        .expect("lock");
    drop(guard);
    // The stores stay open: only the guard went.
    takes_the_lock(
        &other,
        Duration::from_secs(10),
        "freed when the guard dropped",
    )
    .await;
    takes_the_lock(
        &b.stores,
        Duration::from_secs(10),
        "the first stores may take it again",
    )
    .await;
}

pub async fn token_store_locks_per_app_and_round_trips(kind: Kind) {
    let b = Backend::ready(kind).await;
    let a = b.stores.tokens.clone();
    let other = b.open_again().await.tokens;

    let mut first = a
        .lock_app("app.1", Duration::from_secs(1))
        .await
        .expect("first holder");
    assert_eq!(first.read().await.expect("read"), None);

    // A second holder of the same app waits, then gives up.
    let started = Instant::now();
    let err = match other.lock_app("app.1", Duration::from_millis(1500)).await {
        Ok(_) => panic!("the lock is held"),
        Err(e) => e,
    };
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert!(matches!(err, StoreError::LockBusy { .. }), "{err:?}");

    let app = stored_app("app.1", "tok-1", Some("https://example.org/cb"));
    first.write(&app).await.expect("write");
    assert_eq!(first.read().await.expect("read"), Some(app.clone()));
    assert!(first
        .write(&stored_app("app.other", "x", None))
        .await
        .is_err());

    // Released when the guard drops: a waiting holder gets it then.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        drop(first);
    });
    let started = Instant::now();
    let mut second = other
        .lock_app("app.1", Duration::from_secs(15))
        .await
        .expect("free once the first guard dropped");
    assert!(started.elapsed() >= Duration::from_millis(700));
    release.await.expect("release task");
    assert_eq!(second.read().await.expect("read"), Some(app.clone()));

    // Updated in place; no redirect_uri keeps the stored one.
    let mut next = stored_app("app.1", "tok-2", None);
    next.tokens.obtained_at += chrono::Duration::seconds(3000);
    next.tokens.expires_at += 3000;
    second.write(&next).await.expect("second write");
    drop(second);
    let read = a.load_app("app.1").await.expect("load").expect("stored");
    assert_eq!(read.redirect_uri.as_deref(), Some("https://example.org/cb"));
    assert_eq!(
        read,
        b24sync::model::oauth::StoredApp {
            redirect_uri: Some("https://example.org/cb".into()),
            ..next.clone()
        }
    );
    assert_eq!(
        b.count(
            "SELECT COUNT(*) FROM bitrix_oauth WHERE client_id = 'app.1' \
             AND access_token = 'tok-2' AND code IS NULL"
        )
        .await,
        1
    );
    assert_eq!(b.count("SELECT COUNT(*) FROM bitrix_oauth").await, 1);
    assert_eq!(
        b.count("SELECT COUNT(*) FROM b24sync_state WHERE name = 'oauth:app.1'")
            .await,
        1
    );
    // save_app takes the lock itself.
    other
        .save_app(&stored_app("app.3", "tok-3", None))
        .await
        .expect("save");
    assert_eq!(
        other.load_app("app.3").await.expect("load"),
        Some(stored_app("app.3", "tok-3", None))
    );

    // A row refreshed by something else (an Oktell job: another dateexec) is read on its own.
    b.exec_per(
        "UPDATE bitrix_oauth SET access_token = 'oktell', expires_in = '3600', \
         dateexec = '2024-06-01 10:20:30' WHERE client_id = 'app.1';",
        "UPDATE dbo.bitrix_oauth SET access_token = N'oktell', expires_in = N'3600', \
         dateexec = '2024-06-01T10:20:30.500' WHERE client_id = N'app.1';",
    )
    .await;
    let read = a.load_app("app.1").await.expect("load").expect("stored");
    assert_eq!(read.tokens.access_token.expose(), "oktell");
    assert_eq!(
        read.tokens.client_endpoint,
        "https://acme.bitrix24.ru/rest/"
    );
    assert_eq!(
        read.oauth_server, None,
        "the side record describes another pair"
    );
    assert_eq!(a.load_app("nobody").await.expect("load"), None);
}

pub async fn token_locks_of_different_apps_are_independent(kind: Kind) {
    let b = Backend::ready(kind).await;
    let other = b.open_again().await.tokens;
    let _first = b
        .stores
        .tokens
        .lock_app("app.1", Duration::from_secs(1))
        .await
        .expect("first holder");
    // Another app is not blocked.
    drop(
        other
            .lock_app("app.2", Duration::from_secs(1))
            .await
            .expect("another app"),
    );
}

pub async fn caller_lookup_matches_any_spelling_newest_first(kind: Kind) {
    let b = Backend::ready(kind).await;
    let w = &b.stores.batches;
    let (leads, anna) = caller_leads();
    let first = leads[0].clone();
    w.load_batch(batch(leads), now()).await.expect("load");
    b.stores
        .operators
        .store_operators(vec![anna])
        .await
        .expect("operators");

    // E.164 from any spelling, newest first; the fallback on the tail.
    for caller in ["89123456789", "+79123456789", "9123456789"] {
        assert_eq!(found(&b.stores, caller).await, vec![2, 1], "{caller}");
    }
    assert_eq!(found(&b.stores, "7 000 345 67 89").await, vec![3]);
    let m = b
        .stores
        .lookup
        .lookup_caller(&query("89123456789"))
        .await
        .expect("lookup");
    assert_eq!(m[0].operator_extension.as_deref(), Some("106"));
    assert_eq!(m[0].operator_name.as_deref(), Some("Анна"));
    assert_eq!(m[1].operator_id.as_deref(), Some("5"));
    assert_eq!(m[1].operator_name, None);
    assert_eq!(m[0].date_modify, Some(dt(2024, 5, 2, 9, 0, 0)));

    // The value that is not a number is kept as typed, marked, and made no error row.
    assert_eq!(
        b.count(&format!(
            "SELECT COUNT(*) FROM b24sync_lead_phones WHERE lead_id = 1 AND value = {} \
             AND normalisable = 0 AND e164 IS NULL AND reason LIKE 'not a phone number%'",
            b.lit("не звонить")
        ))
        .await,
        1
    );
    assert!(b.errors().await.is_empty());

    // A re-load of the same lead changes nothing; a number removed in Bitrix24 stops matching.
    let rows = "SELECT Id FROM b24sync_lead_phones ORDER BY Id";
    let ids_before = b.rows(rows, &[crate::backend::Col::Int]).await;
    w.load_batch(batch(vec![first.clone()]), now())
        .await
        .expect("reload");
    assert_eq!(b.rows(rows, &[crate::backend::Col::Int]).await, ids_before);
    let without = lead_with_phones(1, "5", &[("12", "не звонить")]);
    w.load_batch(batch(vec![without]), now())
        .await
        .expect("load");
    assert_eq!(found(&b.stores, "89123456789").await, vec![2]);
    // A deleted lead's phones go with it.
    b.stores
        .deletions
        .delete_records(LEAD, vec![2])
        .await
        .expect("delete");
    assert!(found(&b.stores, "89123456789").await.is_empty());
    assert_eq!(
        b.count("SELECT COUNT(*) FROM b24sync_lead_phones WHERE lead_id = 2")
            .await,
        0
    );
}

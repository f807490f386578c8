//! `DeletionStore`, `ErrorReview`, `StateStore`, `RunHistory`, `OperatorStore`.

use b24sync::schema::LEAD;
use std::collections::BTreeMap;

use b24sync::model::{LeadRecord, Operator};
use b24sync::store::{RunRecord, StoreError};

use crate::backend::{Backend, Kind};
use crate::build::*;

pub async fn lead_ids_lists_every_stored_lead(kind: Kind) {
    let b = Backend::ready(kind).await;
    let (w, d) = (&b.stores.batches, &b.stores.deletions);
    assert_eq!(d.record_ids(LEAD).await.expect("ids"), Vec::<i32>::new());
    w.load_batch(batch(vec![lead(5, 0), lead(1, 0), lead(3, 0)]), now())
        .await
        .expect("load");
    // A lead that only has an error row (rejected) is not a stored lead.
    w.load_batch(
        with_rejected(
            (1000..1250).map(|id| lead(id, 0)).collect(),
            vec![rejected(Some("77"), "not loaded: test")],
        ),
        now(),
    )
    .await
    .expect("load");
    let mut want = vec![1, 3, 5];
    want.extend(1000..1250);
    assert_eq!(
        d.record_ids(LEAD).await.expect("ids"),
        want,
        "sorted, each once"
    );
}

pub async fn delete_leads_removes_exactly_those_leads_and_their_rows(kind: Kind) {
    let b = Backend::ready(kind).await;
    let (w, d) = (&b.stores.batches, &b.stores.deletions);

    // Leads 1..=8: contacts for id % 4 != 0, a solution for even ids; 2, 3 and 5 have an error
    // row; a rejected lead 99 (error row, no lead) and one without an ID.
    let mut records: Vec<LeadRecord> = (1..=8).map(|id| lead(id, 0)).collect();
    for id in [2, 3, 5] {
        records[id - 1] = with_problem(id as i32, &format!("problem of {id}"));
    }
    let out = w
        .load_batch(
            with_rejected(
                records.clone(),
                vec![
                    rejected(Some("99"), "not loaded: 99"),
                    rejected(None, "no ID"),
                ],
            ),
            now(),
        )
        .await
        .expect("load");
    assert_eq!((out.leads_inserted, out.error_rows), (8, 5));
    // Rows the original scripts could leave: a contact and a solution of a lead that is not
    // in bitrix_leads (99), and an extra copy of lead 6's solution.
    b.exec(
        "INSERT INTO bitrix_lead_contacts (sql_LEAD_ID, sql_CONTACT_ID, sql_VALUE_TYPE, sql_VALUE, sql_TYPE_ID) \
             VALUES (99, '990', 'WORK', '+7 999', 'PHONE');
         INSERT INTO bitrix_lead_solution (sql_LEAD_ID, sql_solution) VALUES (99, 'x'), (6, 'copy');",
    )
    .await;

    let leads_before = b.leads().await;
    let contacts_before = b.contacts().await;
    let errors_before = b.errors().await;
    let solutions_before = b.solutions().await;

    assert_eq!(
        d.delete_records(LEAD, vec![])
            .await
            .expect("nothing to delete"),
        0
    );

    // 2, 3, 6 are stored; 3 is listed twice; 99 has only dependent rows; the 2,000 IDs
    // from 10,000 exist nowhere (on SQL Server they make the bulk path carry more than one
    // packet).
    let gone = [2, 3, 6, 99];
    let mut ids = vec![3, 2, 3, 6, 99];
    ids.extend(10_000..12_000);
    let deleted = d.delete_records(LEAD, ids).await.expect("delete");
    assert_eq!(deleted, 3, "bitrix_leads rows deleted");

    let kept = |lead: i64| !gone.contains(&lead);
    let want: BTreeMap<_, _> = leads_before
        .into_iter()
        .filter(|(id, _)| kept(i64::from(*id)))
        .collect();
    assert_eq!(
        b.leads().await,
        want,
        "the others untouched (same Ids, same values)"
    );
    assert_eq!(d.record_ids(LEAD).await.expect("ids"), vec![1, 4, 5, 7, 8]);

    let want: Vec<_> = contacts_before.into_iter().filter(|k| kept(k.1)).collect();
    assert!(!want.is_empty());
    assert_eq!(b.contacts().await, want);

    let want: Vec<_> = solutions_before.into_iter().filter(|o| kept(o.1)).collect();
    assert_eq!(
        want.iter().map(|o| o.1).collect::<Vec<_>>(),
        vec![4, 8],
        "only the kept leads' solutions"
    );
    assert_eq!(b.solutions().await, want);

    let want: Vec<_> = errors_before
        .into_iter()
        .filter(|e| match e.1.as_deref() {
            Some(id) => kept(id.parse().expect("numeric ID")),
            None => true, // no lead to tie it to: never deleted
        })
        .collect();
    assert_eq!(
        want.iter().map(|e| e.1.clone()).collect::<Vec<_>>(),
        vec![None, Some("5".to_string())]
    );
    assert_eq!(b.errors().await, want);

    // Deleting again: nothing left to delete (SQL Server: the staging table was dropped and
    // is recreated).
    assert_eq!(d.delete_records(LEAD, vec![2, 3]).await.expect("again"), 0);
}

pub async fn delete_leads_is_one_transaction(kind: Kind) {
    let b = Backend::ready(kind).await;
    let (w, d) = (&b.stores.batches, &b.stores.deletions);
    w.load_batch(
        batch(vec![
            with_problem(1, "p1"),
            lead(2, 0),
            with_problem(5, "p5"),
        ]),
        now(),
    )
    .await
    .expect("load");
    // Something the store cannot foresee makes the last DELETE (bitrix_leads) fail for lead
    // 5: a DBA's table referencing it (SQL Server: a foreign key on the unique sql_ID;
    // SQLite, whose connections do not enforce foreign keys by default: a trigger).
    b.exec_per(
        "CREATE TABLE test_pin (sql_ID INTEGER NOT NULL);
         INSERT INTO test_pin (sql_ID) VALUES (5);
         CREATE TRIGGER FK_test_pin BEFORE DELETE ON bitrix_leads
         WHEN OLD.sql_ID IN (SELECT sql_ID FROM test_pin)
         BEGIN SELECT RAISE(ABORT, 'FK_test_pin: lead 5 is referenced'); END;",
        "CREATE TABLE dbo.test_pin (sql_ID int NOT NULL CONSTRAINT FK_test_pin REFERENCES dbo.bitrix_leads (sql_ID));
         INSERT INTO dbo.test_pin (sql_ID) VALUES (5);",
    )
    .await;
    let leads_before = b.leads().await;
    let contacts_before = b.contacts().await;
    let errors_before = b.errors().await;
    assert!(contacts_before.iter().any(|k| k.1 == 1) && contacts_before.iter().any(|k| k.1 == 5));
    assert_eq!(errors_before.len(), 2);

    let err = d
        .delete_records(LEAD, vec![1, 5])
        .await
        .expect_err("deleting lead 5 is refused");
    assert!(
        matches!(err, StoreError::Database { .. })
            && err.to_string().to_lowercase().contains("fk_test_pin"),
        "{err}"
    );
    // Nothing went, not even lead 1's rows deleted before the failing statement.
    assert_eq!(b.leads().await, leads_before);
    assert_eq!(b.contacts().await, contacts_before);
    assert_eq!(b.errors().await, errors_before);
    assert_eq!(
        b.count("SELECT COUNT(*) FROM bitrix_lead_solution").await,
        1,
        "lead 2's solution"
    );

    // The connection went back clean: the store keeps working.
    b.exec_per(
        "DROP TRIGGER FK_test_pin; DROP TABLE test_pin;",
        "DROP TABLE dbo.test_pin;",
    )
    .await;
    assert_eq!(d.delete_records(LEAD, vec![1, 5]).await.expect("delete"), 2);
    assert_eq!(d.record_ids(LEAD).await.expect("ids"), vec![2]);
    assert!(b.errors().await.is_empty());
    assert!(b.contacts().await.iter().all(|k| k.1 == 2));
}

pub async fn error_rows_are_listed_with_dates_and_cleared_by_date(kind: Kind) {
    let b = Backend::ready(kind).await;
    let (w, e) = (&b.stores.batches, &b.stores.errors);
    assert!(e.error_rows().await.expect("list").is_empty());

    let (t1, t2, t3) = (
        dt(2024, 6, 1, 10, 0, 0),
        dt(2024, 6, 2, 10, 0, 0),
        dt(2024, 6, 3, 23, 59, 59),
    );
    w.load_batch(batch(vec![with_problem(1, "first")]), t1)
        .await
        .expect("load");
    w.load_batch(
        with_rejected(
            vec![with_problem(2, "second")],
            vec![rejected(Some("abc"), "not loaded: ID is not a number")],
        ),
        t2,
    )
    .await
    .expect("load");
    w.load_batch(with_rejected(vec![], vec![rejected(None, "no ID")]), t3)
        .await
        .expect("load");
    // A row written by someone else without a date.
    b.exec(
        "INSERT INTO bitrix_import_lead_error (sql_ID, sql_error, sql_full_lead_info, sql_date_error) \
         VALUES ('7', 'hand-made', '{}', NULL);",
    )
    .await;

    let rows = e.error_rows().await.expect("list");
    let raw = b.errors().await;
    assert_eq!(rows.len(), 5);
    // Oldest first, by Id; each field as stored.
    let ids: Vec<i64> = rows.iter().map(|r| r.row_id).collect();
    let raw_ids: Vec<i64> = raw.iter().map(|e| e.0).collect();
    assert_eq!(ids, raw_ids);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let summary: Vec<_> = rows.iter().map(|r| (r.lead_id.as_deref(), r.at)).collect();
    assert_eq!(
        summary,
        vec![
            (Some("1"), Some(t1)),
            (Some("abc"), Some(t2)),
            (Some("2"), Some(t2)),
            (None, Some(t3)),
            (Some("7"), None),
        ]
    );
    assert_eq!(
        rows[0].reason.as_deref(),
        Some("loaded with changes: TITLE: first")
    );
    assert_eq!(
        rows[1].reason.as_deref(),
        Some("not loaded: ID is not a number")
    );
    assert_eq!(rows[4].reason.as_deref(), Some("hand-made"));

    // Strictly before: the rows of t2 itself stay; undated rows are never cleared by date.
    assert_eq!(
        e.clear_errors(dt(2024, 1, 1, 0, 0, 0))
            .await
            .expect("clear"),
        0
    );
    assert_eq!(e.clear_errors(t2).await.expect("clear"), 1);
    let left: Vec<_> = e
        .error_rows()
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.lead_id)
        .collect();
    assert_eq!(
        left,
        vec![
            Some("abc".to_string()),
            Some("2".to_string()),
            None,
            Some("7".to_string())
        ]
    );
    assert_eq!(
        e.clear_errors(t2 + chrono::Duration::seconds(1))
            .await
            .expect("clear"),
        2
    );
    assert_eq!(
        e.clear_errors(dt(2030, 1, 1, 0, 0, 0))
            .await
            .expect("clear"),
        1
    );
    let left = e.error_rows().await.expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].lead_id.as_deref(), left[0].at), (Some("7"), None));
    // The other tables are not touched.
    assert_eq!(
        b.stores.deletions.record_ids(LEAD).await.expect("ids"),
        vec![1, 2]
    );
}

pub async fn error_rows_are_deleted_by_row_id(kind: Kind) {
    let b = Backend::ready(kind).await;
    let e = &b.stores.errors;
    b.stores
        .batches
        .load_batch(
            with_rejected(
                vec![with_problem(1, "first")],
                vec![
                    rejected(Some("abc"), "not a number"),
                    rejected(None, "no ID"),
                ],
            ),
            now(),
        )
        .await
        .expect("load");
    let rows = e.error_rows().await.expect("list");
    assert_eq!(rows.len(), 3);
    assert_eq!(e.delete_error_rows(vec![]).await.expect("none"), 0);
    let unkeyed: Vec<i64> = rows
        .iter()
        .filter(|r| r.numeric_lead_id().is_none())
        .map(|r| r.row_id)
        .collect();
    assert_eq!(unkeyed.len(), 2);
    let absent = rows.iter().map(|r| r.row_id).max().unwrap_or(0) + 100;
    let mut ids = unkeyed.clone();
    ids.push(absent);
    assert_eq!(e.delete_error_rows(ids).await.expect("delete"), 2);
    let left: Vec<_> = e
        .error_rows()
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.lead_id)
        .collect();
    assert_eq!(left, vec![Some("1".to_string())]);
}

pub async fn state_round_trips_and_is_overwritten(kind: Kind) {
    let b = Backend::ready(kind).await;
    let s = b.stores.state.clone();

    assert_eq!(s.read_state("watermark").await.expect("read"), None);
    s.write_state("watermark", "2024-06-01T10:00:00+03:00")
        .await
        .expect("insert");
    assert_eq!(
        s.read_state("watermark").await.expect("read").as_deref(),
        Some("2024-06-01T10:00:00+03:00")
    );
    s.write_state("watermark", "2024-06-02T11:30:15+03:00")
        .await
        .expect("overwrite");
    assert_eq!(
        s.read_state("watermark").await.expect("read").as_deref(),
        Some("2024-06-02T11:30:15+03:00")
    );
    assert_eq!(
        b.count("SELECT COUNT(*) FROM b24sync_state WHERE name = 'watermark'")
            .await,
        1,
        "overwritten in place, not added"
    );

    // Other names are independent; awkward values come back exactly, including one longer
    // than 4,000 characters and the empty string (not NULL).
    let long = format!("«{}» 'quoted' \"too\" 😀", "Ж".repeat(10_000));
    s.write_state("runs_since_deletion_check", "0")
        .await
        .expect("write");
    s.write_state("long", &long).await.expect("write long");
    s.write_state("empty", "").await.expect("write empty");
    assert_eq!(
        s.read_state("long").await.expect("read").as_deref(),
        Some(long.as_str())
    );
    assert_eq!(
        s.read_state("empty").await.expect("read").as_deref(),
        Some("")
    );
    assert_eq!(
        s.read_state("runs_since_deletion_check")
            .await
            .expect("read")
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        s.read_state("watermark").await.expect("read").as_deref(),
        Some("2024-06-02T11:30:15+03:00")
    );

    // Writers racing on a new name: all succeed, one row, one of their values.
    let mut tasks = Vec::new();
    for k in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.write_state("raced", &format!("v{k}")).await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("concurrent write");
    }
    assert_eq!(
        b.count("SELECT COUNT(*) FROM b24sync_state WHERE name = 'raced'")
            .await,
        1
    );
    let raced = s.read_state("raced").await.expect("read");
    assert!(
        matches!(raced.as_deref(), Some("v0" | "v1" | "v2" | "v3")),
        "{raced:?}"
    );
}

pub async fn run_history_starts_finishes_and_lists_newest_first(kind: Kind) {
    let b = Backend::ready(kind).await;
    let h = &b.stores.history;
    let id1 = h
        .run_started(&run_record(dt(2024, 6, 1, 8, 0, 0), "full"))
        .await
        .expect("start");
    assert!(id1 > 0);
    let runs = h.recent_runs(5).await.expect("recent");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].id, runs[0].status.as_str(), runs[0].finished_at),
        (id1, "running", None)
    );
    assert_eq!(runs[0].started_at, Some(dt(2024, 6, 1, 8, 0, 0)));
    assert_eq!(runs[0].mode, "full");

    let long = "é😀".repeat(1500); // 4,500 UTF-16 units; the column holds 2,000
    let done = RunRecord {
        id: id1,
        started_at: Some(dt(2024, 6, 1, 8, 0, 0)),
        finished_at: Some(dt(2024, 6, 1, 8, 1, 30)),
        mode: "full".into(),
        status: "errors".into(),
        leads_read: 120,
        leads_upserted: 100,
        leads_deleted: 3,
        contact_values: 240,
        error_rows: 2,
        requests: 7,
        server_seconds: 1.5,
        seconds: 90.25,
        exit_code: Some(2),
        message: Some(long.clone()),
    };
    h.run_finished(&done).await.expect("finish");
    // A second run that never finishes (the process died): it stays `running`.
    let id2 = h
        .run_started(&RunRecord {
            status: "ok".into(), // ignored: a run starts as `running`
            ..run_record(dt(2024, 6, 2, 8, 0, 0), "incremental")
        })
        .await
        .expect("second start");
    assert!(id2 > id1);

    let runs = h.recent_runs(10).await.expect("recent");
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![id2, id1]
    );
    assert_eq!(
        (
            runs[0].status.as_str(),
            runs[0].finished_at,
            runs[0].exit_code
        ),
        ("running", None, None),
        "a run that never finished stays running"
    );
    let got = &runs[1];
    let message = got.message.clone().expect("message");
    // Cut to 2,000 UTF-16 units (nvarchar(2000) on SQL Server), never inside a character:
    // the emoji that would straddle the limit goes whole.
    assert_eq!(message.encode_utf16().count(), 1999);
    assert!(long.starts_with(&message));
    assert_eq!(
        RunRecord {
            message: None,
            ..got.clone()
        },
        RunRecord {
            message: None,
            ..done.clone()
        }
    );
    assert_eq!(h.recent_runs(1).await.expect("one").len(), 1);
    assert_eq!(h.recent_runs(1).await.expect("one")[0].id, id2);

    // No message and no exit code are stored as NULL.
    h.run_finished(&RunRecord {
        id: id2,
        status: "interrupted".into(),
        exit_code: None,
        message: None,
        finished_at: Some(dt(2024, 6, 2, 8, 5, 0)),
        ..run_record(dt(2024, 6, 2, 8, 0, 0), "incremental")
    })
    .await
    .expect("finish without code");
    assert_eq!(
        b.count(&format!(
            "SELECT COUNT(*) FROM b24sync_runs WHERE Id = {id2} AND exit_code IS NULL \
             AND message IS NULL AND finished_at IS NOT NULL"
        ))
        .await,
        1
    );

    let err = h
        .run_finished(&RunRecord {
            id: id2 + 100,
            status: "ok".into(),
            ..RunRecord::default()
        })
        .await
        .expect_err("no such run");
    assert!(matches!(err, StoreError::Database { .. }), "{err:?}");
}

pub async fn runtime_row_one_is_stamped(kind: Kind) {
    let b = Backend::ready(kind).await;
    let h = &b.stores.history;
    h.stamp_runtime(dt(2024, 6, 1, 10, 0, 0))
        .await
        .expect("first stamp");
    h.stamp_runtime(dt(2024, 6, 1, 11, 30, 15))
        .await
        .expect("second updates it");
    use crate::backend::{Col, Val};
    let rows = b
        .table(
            "bitrix_lead_runtime",
            &[
                ("Id", Col::Int),
                ("lead_get_by_id_dt", Col::Time),
                ("lead_list_dt", Col::Time),
            ],
            "Id",
        )
        .await;
    let at = Val::Time(dt(2024, 6, 1, 11, 30, 15));
    assert_eq!(rows, vec![vec![Val::Int(1), at.clone(), at]]);
    // A plain insert still works (on SQL Server: IDENTITY_INSERT was switched off again).
    b.exec("INSERT INTO bitrix_lead_runtime (lead_list_dt) VALUES (NULL);")
        .await;
}

pub async fn operators_are_upserted_and_id_only_rows_keep_their_details(kind: Kind) {
    let b = Backend::ready(kind).await;
    let o = &b.stores.operators;
    let op = |id: &str, name: Option<&str>, details: bool| Operator {
        user_id: id.into(),
        name: name.map(str::to_string),
        phone_inner: name.map(|_| format!("1{id}")),
        active: name.map(|_| true),
        details,
        ..Default::default()
    };
    o.store_operators(vec![op("3", Some("Анна"), true), op("4", None, false)])
        .await
        .expect("store");
    // ID only: a new row is added, a known one keeps its details.
    o.store_operators(vec![op("3", None, false), op("5", None, false)])
        .await
        .expect("store");
    assert_eq!(o.operator_ids().await.expect("ids"), vec!["3", "4", "5"]);
    assert_eq!(
        b.count(&format!(
            "SELECT COUNT(*) FROM b24sync_operators WHERE user_id = '3' AND name = {} \
             AND phone_inner = '13' AND active = 1",
            b.lit("Анна")
        ))
        .await,
        1
    );
    assert_eq!(
        b.count("SELECT COUNT(*) FROM b24sync_operators WHERE details_at IS NULL")
            .await,
        2
    );
    // New details replace old ones.
    o.store_operators(vec![op("4", Some("Борис"), true)])
        .await
        .expect("store");
    assert_eq!(
        b.count(&format!(
            "SELECT COUNT(*) FROM b24sync_operators WHERE user_id = '4' AND name = {} \
             AND details_at IS NOT NULL",
            b.lit("Борис")
        ))
        .await,
        1
    );
}

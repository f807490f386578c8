//! Load-path throughput against a real SQL Server: the sink's bulk + set-based upsert versus
//! the original scenarios' row-by-row `IF EXISTS ... UPDATE ... ELSE INSERT` baseline.
//! See docs/benchmarks-load.md.
//!
//!     B24SYNC_TEST_MSSQL='Server=tcp:HOST,1433;User Id=sa;Password=...;TrustServerCertificate=true' \
//!         cargo run --example mssql_load_bench -- [LEADS=5000] [BATCH=500]
//!
//! Each variant runs in a fresh database `b24sync_test_<random>` (dropped at the end).

#[path = "../tests/mssql_support/mod.rs"]
mod mssql_support;

use std::time::{Duration, Instant};

use b24sync::load::mssql::{MssqlOptions, MssqlSink};
use b24sync::model::{Batch, Cell, LeadRecord};
use b24sync::prepare::prepare;
use b24sync::store::{BatchOutcome, BatchWriter, SchemaAdmin};
use mssql_support::*;
use tiberius::ToSql;

const ROW_LEAD: &str = include_str!("../sql/mssql/bench/row_by_row_lead.sql");
const ROW_CONTACT: &str = include_str!("../sql/mssql/bench/row_by_row_contact.sql");

fn rate(rows: usize, took: Duration) -> String {
    format!(
        "{:>10.0} rows/s  ({rows} leads in {:.2} s)",
        rows as f64 / took.as_secs_f64().max(1e-9),
        took.as_secs_f64()
    )
}

async fn bulk_pass(
    sink: &MssqlSink,
    leads: &[LeadRecord],
    batch: usize,
) -> (Duration, BatchOutcome) {
    let started = Instant::now();
    let mut total = BatchOutcome::default();
    for chunk in leads.chunks(batch) {
        let b = Batch {
            entity: b24sync::schema::LEAD,
            records: chunk.to_vec(),
            rejected: vec![],
        };
        total.add(
            &sink
                .load_batch(prepare(b), dt(2024, 6, 1, 0, 0, 0))
                .await
                .expect("load_batch"),
        );
    }
    (started.elapsed(), total)
}

/// The original way: one round trip per lead and one per contact value.
async fn row_by_row_pass(c: &mut Raw, leads: &[LeadRecord]) -> Duration {
    let started = Instant::now();
    for r in leads {
        let texts: Vec<Option<&str>> = r.lead.cells.iter().map(Cell::as_text).collect();
        let dates: Vec<Option<chrono::NaiveDateTime>> =
            r.lead.cells.iter().map(Cell::as_datetime).collect();
        let mut params: Vec<&dyn ToSql> = vec![&r.lead.id];
        for (i, col) in b24sync::model::LEAD_COLUMNS.iter().enumerate() {
            match col.kind {
                b24sync::model::ColumnKind::DateTime | b24sync::model::ColumnKind::Date => {
                    params.push(&dates[i])
                }
                _ => params.push(&texts[i]),
            }
        }
        c.execute(ROW_LEAD, &params).await.expect("row-by-row lead");
        for k in &r.contacts {
            c.execute(
                ROW_CONTACT,
                &[
                    &k.lead_id,
                    &k.contact_id,
                    &k.value_type,
                    &k.value,
                    &k.type_id,
                ],
            )
            .await
            .expect("row-by-row contact");
        }
    }
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let Some(server) = server() else { return };
    let mut args = std::env::args().skip(1);
    let n: i32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let batch: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let first: Vec<LeadRecord> = (1..=n).map(|id| lead(id, 0)).collect();
    let second: Vec<LeadRecord> = (1..=n).map(|id| lead(id, 1)).collect();
    let contacts: usize = first.iter().map(|r| r.contacts.len()).sum();
    println!("{n} leads ({contacts} contact values), batches of {batch}");

    {
        let db = TestDb::create(&server).await;
        let sink = MssqlSink::connect(&db.conn, MssqlOptions::default())
            .await
            .expect("connect");
        sink.init_schema().await.expect("init");
        let (t, o) = bulk_pass(&sink, &first, batch).await;
        println!(
            "bulk + set-based, insert:     {}  {o:?}",
            rate(first.len(), t)
        );
        let (t, o) = bulk_pass(&sink, &first, batch).await;
        println!(
            "bulk + set-based, unchanged:  {}  {o:?}",
            rate(first.len(), t)
        );
        let (t, o) = bulk_pass(&sink, &second, batch).await;
        println!(
            "bulk + set-based, all change: {}  {o:?}",
            rate(second.len(), t)
        );
    }
    {
        let db = TestDb::create(&server).await;
        let sink = MssqlSink::connect(&db.conn, MssqlOptions::default())
            .await
            .expect("connect");
        sink.init_schema().await.expect("init"); // same indexes as the bulk run
        let mut c = db.raw().await;
        let t = row_by_row_pass(&mut c, &first).await;
        println!("row-by-row, insert:           {}", rate(first.len(), t));
        let t = row_by_row_pass(&mut c, &first).await;
        println!("row-by-row, unchanged:        {}", rate(first.len(), t));
        let t = row_by_row_pass(&mut c, &second).await;
        println!("row-by-row, all change:       {}", rate(second.len(), t));
    }
}

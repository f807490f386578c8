//! `demo` (a simulated portal synced into a database of its own) and `simulator` (the
//! simulated portal alone, until Ctrl-C).

use anyhow::Context;
use b24sync::schema::LEAD;

use super::args::{DemoArgs, SimulatorArgs};
use super::open::{open_db_stores, DbOpen};
use super::signals::{interrupt_token, Signals};
use super::{exit, fail, run_error_code};
use b24sync::extract::client::{Bitrix24Client, ClientConfig};
use b24sync::extract::Webhook;
use b24sync::run::{self, RunError, SyncOptions};
use b24sync_simulator::{RateLimit, Simulator, SimulatorConfig};

/// The six Oktell tables, as the demo names them.
const OKTELL_TABLES: &str = "bitrix_leads, bitrix_lead_contacts, bitrix_lead_solution, \
     bitrix_import_lead_error, bitrix_lead_runtime, bitrix_oauth";
/// The contacts' and companies' tables (docs/tables.md).
const CRM_TABLES: &str = "bitrix_contacts, bitrix_contact_multifields, bitrix_companies, \
     bitrix_company_multifields";

/// `b24sync demo`: a simulated portal synced into a database of its own. It exits by the
/// same rule as `sync` (3 while bitrix_import_lead_error holds rows, which the simulator
/// seeds on purpose), and never writes into a database holding a real portal's leads.
pub(super) async fn demo_command(args: &DemoArgs) -> u8 {
    let result: anyhow::Result<u8> = async {
        let paging = args.paging.parse().map_err(anyhow::Error::msg)?;
        let db = args.db.to_string_lossy().to_string();
        let stores = open_db_stores(&db, 1, DbOpen::Create).await?;
        // Reads never create the schema: the demo's database is made here, as `init-db` would.
        stores.schema.init_schema().await?;
        // A database bound to a loopback portal is an earlier demo's (the simulator's port
        // changes every run): re-bound freely. Anything else is a real portal's data.
        let rebind = match run::bound_portal(stores.state.as_ref()).await {
            Ok(Some(bound)) if bound.is_loopback() => true,
            Ok(Some(bound)) => {
                return Ok(fail(
                    exit::CONFIG,
                    &anyhow::anyhow!(
                        "the database {} holds the leads of the Bitrix24 portal {bound}: the demo \
                         writes only into a database of its own. Leave out --db (the demo's file is \
                         ./b24sync-demo.db) or name a new file",
                        stores.target
                    ),
                ))
            }
            Ok(None) if !stores.deletions.record_ids(LEAD).await.map_err(RunError::from)?.is_empty() => {
                return Ok(fail(
                    exit::CONFIG,
                    &anyhow::anyhow!(
                        "the database {} holds leads but records no portal (synced by an earlier \
                         b24sync): the demo does not write into it. Leave out --db (the demo's file \
                         is ./b24sync-demo.db) or name a new file",
                        stores.target
                    ),
                ))
            }
            Ok(None) => false,
            Err(e) => return Ok(run_error_code(&e)),
        };
        let config = SimulatorConfig {
            leads: args.leads,
            contacts: args.contacts,
            companies: args.companies,
            seed: args.seed,
            ..SimulatorConfig::default()
        };
        let solution_field = config.solution_field.clone();
        let sim = Simulator::start(config).await.context("cannot start the Bitrix24 simulator on 127.0.0.1")?;
        println!(
            "Bitrix24 simulator: {} leads, {} contacts, {} companies at {}",
            args.leads,
            args.contacts,
            args.companies,
            sim.base_url()
        );
        println!("writing into the demo database {} (not your b24sync.db)", args.db.display());
        let cancel = interrupt_token();
        let webhook = Webhook::parse(&sim.webhook_url())?;
        let client = Bitrix24Client::new(webhook, ClientConfig::default(), cancel.clone())?;
        let opts = SyncOptions {
            paging,
            solution_field: Some(solution_field),
            rebind_portal: rebind,
            ..SyncOptions::default()
        };
        let summary = match run::sync(&client, &(&stores).into(), &opts, cancel).await {
            Ok(s) => s,
            Err(e) => return Ok(run_error_code(&e)),
        };
        println!("{}", b24sync::run::summary_line(&summary));
        println!(
            "database: {} (tables {OKTELL_TABLES}; contacts and companies: {CRM_TABLES})",
            args.db.display()
        );
        // What the table holds now, not only what this run added: a second demo keeps the
        // first one's rows (they are the same problems).
        let held = stores.errors.error_rows().await.map_err(RunError::from)?.len();
        let code = exit::for_summary(&summary);
        if held > 0 {
            println!(
                "{held} rows in bitrix_import_lead_error (the simulator seeds values too long for their \
                 columns on purpose, so the demo exits with 3 like a sync with error rows does); \
                 see: sqlite3 {} 'SELECT sql_ID, sql_error FROM bitrix_import_lead_error'",
                args.db.display()
            );
        }
        sim.shutdown().await;
        Ok(code)
    }
    .await;
    result.unwrap_or_else(|e| fail(exit::INTERNAL, &e))
}

pub(super) async fn simulator_command(args: &SimulatorArgs) -> u8 {
    let rate_limit = match (args.no_rate_limit, args.enterprise) {
        (true, _) => None,
        (false, true) => Some(RateLimit::ENTERPRISE),
        (false, false) => Some(RateLimit::STANDARD),
    };
    let config = SimulatorConfig {
        port: args.port,
        leads: args.leads,
        contacts: args.contacts,
        companies: args.companies,
        seed: args.seed,
        rate_limit,
        ..SimulatorConfig::default()
    };
    // Before the URL is printed, so a script that reads it and stops us at once is heard.
    let mut signals = Signals::install();
    let sim = match Simulator::start(config).await {
        Ok(sim) => sim,
        Err(e) => {
            return fail(
                exit::CONFIG,
                &anyhow::anyhow!("cannot start the simulator on port {}: {e}", args.port),
            )
        }
    };
    println!(
        "Bitrix24 simulator with {} leads, {} contacts, {} companies; webhook URL:",
        args.leads, args.contacts, args.companies
    );
    println!("{}", sim.webhook_url());
    println!("(Ctrl-C to stop)");
    signals.recv().await;
    sim.shutdown().await;
    exit::OK
}

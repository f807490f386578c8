//! b24sync: keeps a call centre's SQL Server (the Oktell `bitrix_*` tables) in step with
//! its Bitrix24 CRM leads.
//!
//! Data flows one way: [`extract`] (Bitrix24 REST) → [`transform`] (lead JSON → rows) →
//! [`load`] (SQL Server or the embedded SQLite database). [`run`] orchestrates one sync;
//! [`serve`] is the event-driven service beside it.
//! The command line (flags, environment, the TOML file) is the binary's (src/main.rs,
//! src/cli/); the Bitrix24 stand-in used by the demo, the tests and the benchmarks is its
//! own crate (crates/simulator), which this library does not depend on.

// Errors carry what a DBA needs to act (portal, method, code, hint); they are returned
// once per run, so their size does not matter on any hot path.
#![allow(clippy::result_large_err)]

pub mod exit;
pub mod extract;
pub mod load;
pub mod model;
pub mod prepare;
pub mod run;
pub mod schema;
pub mod serve;
pub mod store;
pub mod transform;

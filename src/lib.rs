//! b24sync: keeps a call centre's SQL Server (the Oktell `bitrix_*` tables) in step with
//! its Bitrix24 CRM leads.
//!
//! Data flows one way: [`extract`] (Bitrix24 REST) → [`transform`] (lead JSON → rows) →
//! [`load`] (SQL Server or the embedded SQLite database). [`run`] orchestrates one sync;
//! [`cli`] maps flags, environment and the TOML file onto it. [`simulator`] is a Bitrix24
//! stand-in used by the demo, the tests and the benchmarks; the pipeline never imports it.

pub mod cli;
pub mod extract;
pub mod load;
pub mod model;
pub mod run;
pub mod simulator;
pub mod transform;

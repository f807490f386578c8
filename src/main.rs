//! The `b24sync` binary: the command line (src/cli/) over the library, plus the `demo` and
//! `simulator` commands, which start the Bitrix24 simulator (crates/simulator).

// Errors carry what a DBA needs to act (portal, method, code, hint); they are returned
// once per run, so their size does not matter on any hot path (as in src/lib.rs).
#![allow(clippy::result_large_err)]

mod cli;

// The CLI was a module of the library and names the pipeline's modules as `crate::run`,
// `crate::load`, ... and the simulator as `crate::simulator`. These imports make the same
// paths resolve in the binary crate (a crate-root `use` is visible to its submodules), so
// src/cli/ reads the same in either place. `exit` is `pub` because src/cli/mod.rs
// re-exports it.
pub use b24sync::exit;
use b24sync::{extract, load, lookup, model, run, transform};
use b24sync_simulator as simulator;

fn main() -> std::process::ExitCode {
    cli::main()
}

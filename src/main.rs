//! The `b24sync` binary: the command line (src/cli/) over the library, plus the `demo` and
//! `simulator` commands, which start the Bitrix24 simulator (crates/simulator).

// Errors carry what a DBA needs to act (portal, method, code, hint); they are returned
// once per run, so their size does not matter on any hot path (as in src/lib.rs).
#![allow(clippy::result_large_err)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}

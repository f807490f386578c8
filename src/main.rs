//! The `b24sync` binary: the command line (src/cli/) over the library, plus the `demo` and
//! `simulator` commands, which start the Bitrix24 simulator (crates/simulator).

// Errors carry what a DBA needs to act (portal, method, code, hint); they are returned
// once per run, so their size does not matter on any hot path (as in src/lib.rs).
#![allow(clippy::result_large_err)]

mod cli;

// A full re-sync builds and frees millions of small values (a lead's cells, its contact
// values, its JSON) per minute; mimalloc frees them several times faster than the system
// allocator (BENCHMARKS.md, "The load stage").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}

//! The `b24sync` binary: a thin shell over the library (see `b24sync::cli`).

fn main() -> std::process::ExitCode {
    b24sync::cli::main()
}

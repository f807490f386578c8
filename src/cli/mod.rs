//! Command line: flags, environment and the TOML file mapped onto a run.

//! The `taskwire` binary: the command line with the built-in kinds.

use std::process::ExitCode;

fn main() -> anyhow::Result<ExitCode> {
    taskwire::cli::main_with(taskwire::Registry::builtin())
}

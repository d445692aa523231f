//! The `taskwire` binary: the command line with the built-in kinds.

use std::process::ExitCode;

// The server and its workers allocate many small, short-lived buffers per
// task (JSON values, packets, frames); mimalloc handles that pattern well.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<ExitCode> {
    taskwire::cli::main_with(taskwire::Registry::builtin())
}

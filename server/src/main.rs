//! The `taskwire` binary: the command line with the built-in kinds.

use std::process::ExitCode;

// The server and its workers allocate many small, short-lived buffers per
// task (JSON values, packets, frames); mimalloc handles that pattern well.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // mimalloc asks for transparent huge pages, and the kernel then zeroes
    // 2 MiB at every first touch: while the task table grows that was a
    // fifth of the server's CPU time. Small pages fault in far cheaper.
    // Workers inherit the setting. Best effort: a refusal changes nothing.
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    // Past a file-size limit (`ulimit -f`), a write should fail and the
    // store report it (acks refused, health degraded), not kill the server.
    // SAFETY: ignoring a signal has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    taskwire::cli::report::main_or_report(taskwire::Registry::builtin())
}

//! Starting a worker process that cannot outlive the server.

use std::io;
use std::path::Path;
use std::process::Stdio;

use tokio::process::{Child, Command};

/// Environment variable carrying the server's pid to its workers, so a
/// worker whose server died before it could arm its death signal exits.
pub const PARENT_PID_ENV: &str = "TASKWIRE_PARENT_PID";

/// Spawns `<exe> worker` with piped stdin/stdout.
///
/// No orphans, three ways: the kernel sends the child SIGKILL when the
/// server dies, even by SIGKILL (`PR_SET_PDEATHSIG`; it fires when the
/// spawning thread exits, and tokio's worker threads live as long as the
/// runtime); the child exits when its stdin closes; and the `Child` is
/// killed when dropped. Each child gets its own process group so a ctrl-c
/// in the terminal reaches only the server, which then shuts down in order.
pub fn spawn_worker(exe: &Path) -> io::Result<Child> {
    let mut cmd = Command::new(exe);
    cmd.arg("worker")
        .env(PARENT_PID_ENV, std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .process_group(0);
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls `prctl`, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// In the worker: whether the server that spawned it is still its parent.
pub fn parent_alive() -> bool {
    let Ok(expected) = std::env::var(PARENT_PID_ENV) else {
        return true; // started by hand, not by a server
    };
    // SAFETY: getppid has no preconditions and cannot fail.
    let parent = unsafe { libc::getppid() };
    expected.parse::<i32>().is_ok_and(|p| p == parent)
}

//! Child processes that die with the process that started them: the `vigil master`, `vigil
//! proxy` and etcd processes of `vigil-bench` and of the nemesis, and the checkers the
//! benchmark runs, all started through [`crate::Children`] or [`spawn`] directly.
//!
//! Why: those harnesses kill their children when they end normally or unwind (the guard's
//! `Drop`), but a harness that is SIGKILLed — a CI timeout, nextest killing a slow test, an
//! operator's `kill -9` — runs no `Drop`, and its five masters and a proxy would keep running,
//! holding ports and data directories, and disturb the next run. On Linux, [`spawn`] asks the
//! kernel to SIGKILL the child when its parent dies (`prctl(PR_SET_PDEATHSIG, SIGKILL)` in the
//! child between `fork` and `exec`), which holds however the parent dies.
//!
//! Two subtleties of `PR_SET_PDEATHSIG`, and how they are handled:
//! - **The race with the parent's death.** If the parent dies after `fork` but before the child's
//!   `prctl`, no signal ever comes (the child was already re-parented). The child therefore
//!   compares `getppid()` with the parent's PID taken before the `fork`, after the `prctl`, and
//!   refuses to `exec` if they differ.
//! - **The signal follows the forking *thread*, not the process.** The kernel sends it when the
//!   thread that called `fork` exits, even while the rest of the process lives on: a child
//!   spawned from a tokio blocking thread (reaped after 10 s idle) or a short-lived helper thread
//!   would be killed long before the harness ends. So [`spawn`] never forks on the calling
//!   thread: it hands the [`Command`] to one spawner thread that is started on first use and
//!   never exits, and gets the [`Child`] back. That thread ends only with the process, which is
//!   exactly when the children must go.
//!
//! The children stay in the harness's process group: nextest and a terminal's Ctrl-C signal
//! the whole group, which reaches them too; a group of their own would hide them from both.
//! Other systems than Linux have no `PR_SET_PDEATHSIG`; there [`spawn`] is a plain
//! [`Command::spawn`] and only the guard's `Drop` stops the children.

use std::io;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

/// A request to the spawner thread: the command, and where to send its outcome.
type SpawnRequest = (Command, mpsc::SyncSender<io::Result<Child>>);

/// The sending end of the spawner thread's queue (the thread holds the receiving end forever).
static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();

/// Starts `command` as a child that the kernel SIGKILLs when this process dies (on Linux; see
/// the module documentation). Forks on a spawner thread that lives as long as the process.
pub fn spawn(mut command: Command) -> io::Result<Child> {
    die_with_parent(&mut command);
    let (reply, outcome) = mpsc::sync_channel(1);
    spawner()
        .lock()
        .map_err(|_| io::Error::other("the child-process spawner lock is poisoned"))?
        .send((command, reply))
        .map_err(|_| io::Error::other("the child-process spawner thread is gone"))?;
    outcome
        .recv()
        .map_err(|_| io::Error::other("the child-process spawner thread did not answer"))?
}

/// The spawner thread's queue, starting the thread on first use.
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    SPAWNER.get_or_init(|| {
        let (requests, queue) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("vigil-child-spawner".to_string())
            .spawn(move || {
                // Ends only if every sender is dropped, which the static never is.
                for (mut command, reply) in queue {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("starting the child-process spawner thread");
        Mutex::new(requests)
    })
}

/// Arranges for the child of `command` to receive SIGKILL when its parent dies. The workspace's
/// only `unsafe` (the lint is `deny`, allowed here alone): `pre_exec` has no safe form.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;

    use nix::sys::prctl;
    use nix::sys::signal::Signal;
    use nix::unistd::{getpid, getppid};

    let parent = getpid();
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe
    // calls are allowed: prctl and getppid are system calls, and the error path builds an
    // `io::Error` from a raw errno without allocating.
    unsafe {
        command.pre_exec(move || {
            prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            if getppid() != parent {
                // The parent died before the prctl took effect: no signal will come.
                return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// No parent-death signal outside Linux: the guard's `Drop` is the only stop.
#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_spawned_from_a_thread_that_ended_keeps_running() {
        // The thread that asks for the child ends at once; the child must not die with it.
        let mut child = std::thread::spawn(|| {
            let mut command = Command::new("sleep");
            command.arg("30");
            spawn(command).expect("sleep starts")
        })
        .join()
        .expect("the requesting thread");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let running = child.try_wait().expect("try_wait").is_none();
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        assert!(running, "the child died with the thread that requested it");
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_hang() {
        let error = spawn(Command::new("/nonexistent/vigil-no-such-program")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }
}

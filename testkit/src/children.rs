//! The guard over a harness's child processes (vigil masters and proxies, etcd members): each
//! started with its output appended to a log file, signalled by its own PID (SIGSTOP, SIGCONT,
//! SIGKILL), measured (RSS), restarted with the arguments it was first given, and killed when
//! the guard drops, whatever path the harness leaves by.
//!
//! Why a guard: a harness that panics or fails half way must not leave five masters and a proxy
//! running (or frozen by SIGSTOP) on the machine; `Drop` sends SIGKILL to every child still
//! alive and reaps it. A harness that is SIGKILLed runs no `Drop`; for that case every child is
//! started by [`child_process::spawn`], so the kernel SIGKILLs it when the harness dies.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::{child_process, resident, TestkitError};

/// Children one guard holds at most (5 masters and a proxy, or 5 etcd members, with room).
const CHILDREN_MAX: usize = 16;
/// How often [`Children::stop_all`] looks whether a child has exited.
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What one child needs to be (re)started.
#[derive(Debug)]
struct Spec {
    name: String,
    program: PathBuf,
    arguments: Vec<String>,
    log: PathBuf,
}

/// One child: how to start it, and the process while it runs.
#[derive(Debug)]
struct Running {
    spec: Spec,
    child: Option<Child>,
}

/// The children of one harness, by index in the order they were started; every one still
/// running is killed on drop.
#[derive(Debug, Default)]
pub struct Children {
    children: Vec<Running>,
}

impl Children {
    /// Starts `program` with `arguments` as the child called `name`, stdout and stderr appended
    /// to `log`; returns its index.
    pub fn start(
        &mut self,
        name: &str,
        program: &Path,
        arguments: Vec<String>,
        log: &Path,
    ) -> Result<usize, TestkitError> {
        assert!(
            self.children.len() < CHILDREN_MAX,
            "a harness starts at most {CHILDREN_MAX} children"
        );
        let spec = Spec {
            name: name.to_string(),
            program: program.to_path_buf(),
            arguments,
            log: log.to_path_buf(),
        };
        self.children.push(Running { spec, child: None });
        let index = self.children.len() - 1;
        self.spawn(index)?;
        Ok(index)
    }

    fn spawn(&mut self, index: usize) -> Result<(), TestkitError> {
        let running = &mut self.children[index];
        let spec = &running.spec;
        let log_error = TestkitError::io(format!("opening {}", spec.log.display()));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(&log_error)?;
        let errors = log.try_clone().map_err(&log_error)?;
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.arguments)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(errors);
        let child = child_process::spawn(command).map_err(|error| {
            TestkitError::Child(format!(
                "starting {} ({}): {error}",
                spec.name,
                spec.program.display()
            ))
        })?;
        running.child = Some(child);
        Ok(())
    }

    /// The index of the child called `name`.
    pub fn index(&self, name: &str) -> Result<usize, TestkitError> {
        self.children
            .iter()
            .position(|running| running.spec.name == name)
            .ok_or_else(|| TestkitError::Child(format!("no child called {name}")))
    }

    /// The name of child `index`.
    pub fn name(&self, index: usize) -> &str {
        &self.children[index].spec.name
    }

    /// The PID of child `index`, if it runs.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.children[index].child.as_ref().map(Child::id)
    }

    fn running_pid(&self, index: usize) -> Result<u32, TestkitError> {
        self.pid(index)
            .ok_or_else(|| TestkitError::Child(format!("{} is not running", self.name(index))))
    }

    /// Sends `signal` to child `index` by its PID.
    pub fn signal(&self, index: usize, signal: Signal) -> Result<(), TestkitError> {
        send_signal(self.running_pid(index)?, signal)
            .map_err(|error| TestkitError::Child(format!("{}: {error}", self.name(index))))
    }

    /// SIGKILLs child `index` and reaps it (a stopped child dies on SIGKILL too); it keeps its
    /// arguments for [`Children::restart`].
    pub fn kill(&mut self, index: usize) -> Result<(), TestkitError> {
        if let Some(mut child) = self.children[index].child.take() {
            child
                .kill()
                .map_err(TestkitError::io("SIGKILL to a child"))?;
            child.wait().map_err(TestkitError::io("reaping a child"))?;
        }
        Ok(())
    }

    /// Starts child `index` again with the arguments it was first started with.
    pub fn restart(&mut self, index: usize) -> Result<(), TestkitError> {
        assert!(
            self.children[index].child.is_none(),
            "restart of a running process"
        );
        self.spawn(index)
    }

    /// The children that exited without being killed through the guard, each as `name
    /// (status)`: a crash the harness did not cause.
    pub fn exited(&mut self) -> Vec<String> {
        let mut exited = Vec::new();
        for running in &mut self.children {
            if let Some(child) = running.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    exited.push(format!("{} ({status})", running.spec.name));
                }
            }
        }
        exited
    }

    /// Resident set size of child `index`, in bytes.
    pub fn resident_bytes(&self, index: usize) -> Result<u64, TestkitError> {
        resident::resident_bytes(self.running_pid(index)?)
    }

    /// Stops every child: SIGCONT (a frozen one cannot exit), SIGTERM, up to `grace` to exit
    /// (masters close their trace files), then SIGKILL. Returns the children that needed it.
    pub fn stop_all(&mut self, grace: Duration) -> Vec<String> {
        for running in &self.children {
            if let Some(child) = &running.child {
                let _ = send_signal(child.id(), Signal::SIGCONT);
                let _ = send_signal(child.id(), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        let mut forced = Vec::new();
        for running in &mut self.children {
            let Some(mut child) = running.child.take() else {
                continue;
            };
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(STOP_POLL_INTERVAL),
                    _ => {
                        forced.push(running.spec.name.clone());
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        forced
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for running in &mut self.children {
            if let Some(mut child) = running.child.take() {
                // A stopped child dies on SIGKILL too; `kill` fails only if it already exited.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Sends `signal` to process `pid` (a child of this process).
pub fn send_signal(pid: u32, signal: Signal) -> Result<(), TestkitError> {
    let raw = i32::try_from(pid)
        .map_err(|_| TestkitError::Child(format!("pid {pid} is out of range")))?;
    signal::kill(Pid::from_raw(raw), signal)
        .map_err(|error| TestkitError::Child(format!("sending {signal} to pid {pid}: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(children: &mut Children, directory: &Path, name: &str) -> usize {
        let log = directory.join(format!("{name}.log"));
        children
            .start(name, Path::new("sleep"), vec!["30".to_string()], &log)
            .expect("sleep starts")
    }

    #[test]
    fn children_are_killed_when_the_guard_drops() {
        let directory = tempfile::tempdir().unwrap();
        let mut children = Children::default();
        let index = sleeper(&mut children, directory.path(), "sleeper");
        let pid = children.pid(index).unwrap();
        children.signal(index, Signal::SIGSTOP).unwrap();
        drop(children);
        // Reaped: the PID no longer names our child (kill with no signal fails).
        assert!(signal::kill(Pid::from_raw(pid as i32), None).is_err());
    }

    #[test]
    fn a_killed_child_restarts_under_its_name_with_a_new_pid() {
        let directory = tempfile::tempdir().unwrap();
        let mut children = Children::default();
        sleeper(&mut children, directory.path(), "first");
        let index = sleeper(&mut children, directory.path(), "second");
        assert_eq!(children.index("second").unwrap(), index);
        assert!(children.index("third").is_err());
        let before = children.pid(index).unwrap();
        children.kill(index).unwrap();
        assert_eq!(children.pid(index), None);
        assert!(children.signal(index, Signal::SIGCONT).is_err());
        children.restart(index).unwrap();
        assert_ne!(children.pid(index), Some(before));
        assert!(children.resident_bytes(index).unwrap() > 0);
        assert!(children.exited().is_empty(), "{:?}", children.exited());
        let forced = children.stop_all(Duration::from_secs(10));
        assert!(forced.is_empty(), "sleep ignored SIGTERM: {forced:?}");
    }
}

//! Child processes of `vigil bench` (vigil masters and proxies, etcd members, checkers): spawned
//! with their output in files, signalled by PID (SIGSTOP, SIGCONT, SIGKILL), measured (RSS), and
//! killed when the guard drops, whatever path the benchmark leaves by.
//!
//! Why a guard: a benchmark that panics or fails half way must not leave five masters and three
//! etcd members running on the machine; `Drop` sends SIGKILL to every child still alive and
//! reaps it. A benchmark that is SIGKILLed runs no `Drop`; for that case every child is started
//! by [`crate::child_process::spawn`], so the kernel SIGKILLs it when `vigil bench` dies.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::BenchError;
use crate::child_process;

/// Children at most one guard holds (5 masters + a proxy, or 3 etcd members, with room).
const CHILDREN_MAX: usize = 16;
/// Bytes of an HTTP answer read at most (`/status` is well under a kilobyte).
const HTTP_RESPONSE_BYTES_MAX: u64 = 1 << 20;

/// The children of one benchmark section; every one is killed on drop.
#[derive(Debug, Default)]
pub struct Children {
    children: Vec<(String, Child)>,
}

impl Children {
    /// Starts `program` with `arguments`, stdout and stderr appended to `log`.
    pub fn spawn(
        &mut self,
        name: &str,
        program: &Path,
        arguments: &[String],
        log: &Path,
    ) -> Result<u32, BenchError> {
        assert!(
            self.children.len() < CHILDREN_MAX,
            "a benchmark section starts at most {CHILDREN_MAX} children"
        );
        let spawn_error = |source| BenchError::Spawn {
            program: program.display().to_string(),
            source,
        };
        let stdout = std::fs::File::create(log).map_err(spawn_error)?;
        let stderr = stdout.try_clone().map_err(spawn_error)?;
        let mut command = Command::new(program);
        command
            .args(arguments)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = child_process::spawn(command).map_err(spawn_error)?;
        let pid = child.id();
        self.children.push((name.to_string(), child));
        Ok(pid)
    }

    /// The PID of the child called `name`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(child, _)| child == name)
            .map(|(_, child)| child.id())
    }

    /// Sends `signal` to the child called `name`.
    pub fn signal(&self, name: &str, signal: Signal) -> Result<(), BenchError> {
        let pid = self
            .pid(name)
            .ok_or_else(|| BenchError::Setup(format!("no child called {name}")))?;
        send_signal(pid, signal)
    }

    /// The names of children that exited (a crash during a benchmark invalidates it).
    pub fn exited(&mut self) -> Vec<String> {
        self.children
            .iter_mut()
            .filter_map(|(name, child)| match child.try_wait() {
                Ok(Some(_)) => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// Kills and reaps the child called `name` (SIGKILL).
    pub fn kill(&mut self, name: &str) -> Result<(), BenchError> {
        let index = self
            .children
            .iter()
            .position(|(child, _)| child == name)
            .ok_or_else(|| BenchError::Setup(format!("no child called {name}")))?;
        let (_, mut child) = self.children.remove(index);
        send_signal(child.id(), Signal::SIGKILL)?;
        let _ = child.wait();
        Ok(())
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            // A stopped child dies on SIGKILL too; `kill` fails only if it already exited.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `signal` to `pid` (a child of this process).
pub fn send_signal(pid: u32, signal: Signal) -> Result<(), BenchError> {
    let raw = i32::try_from(pid).map_err(|_| BenchError::Setup(format!("pid {pid} too large")))?;
    signal::kill(Pid::from_raw(raw), signal)
        .map_err(|error| BenchError::Setup(format!("sending {signal} to pid {pid}: {error}")))
}

/// Resident set size of `pid` in kibibytes (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path)
        .map_err(|error| BenchError::Setup(format!("reading {path}: {error}")))?;
    text.lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| BenchError::Setup(format!("{path} has no VmRSS line")))
}

/// `count` distinct free ports on 127.0.0.1 for children to listen on
/// (`child_process::free_loopback_address`, each bound until all are chosen, then released).
pub fn free_loopback_addresses(count: usize) -> Result<Vec<SocketAddr>, BenchError> {
    let setup =
        |error: std::io::Error| BenchError::Setup(format!("finding free loopback ports: {error}"));
    let mut held = Vec::with_capacity(count);
    while held.len() < count {
        let address = crate::child_process::free_loopback_address().map_err(setup)?;
        held.push(TcpListener::bind(address).map_err(setup)?);
    }
    held.iter()
        .map(|listener| listener.local_addr())
        .collect::<Result<Vec<_>, _>>()
        .map_err(setup)
}

/// The body of `GET path` on `address` (HTTP/1.1, one request per connection), within `timeout`.
pub async fn http_get(
    address: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<String, BenchError> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream
            .take(HTTP_RESPONSE_BYTES_MAX)
            .read_to_end(&mut response)
            .await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| BenchError::Setup(format!("GET {address}{path}: no answer in {timeout:?}")))?
        .map_err(|error| BenchError::Setup(format!("GET {address}{path}: {error}")))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| BenchError::Setup(format!("GET {address}{path}: no HTTP header end")))?;
    if !head.starts_with("HTTP/1.1 200") {
        let status = head.lines().next().unwrap_or_default();
        return Err(BenchError::Setup(format!("GET {address}{path}: {status}")));
    }
    Ok(body.to_string())
}

/// Where the `vigil` executable running this benchmark is (masters and proxies are started
/// from it, so they are the same build).
pub fn vigil_executable() -> Result<PathBuf, BenchError> {
    std::env::current_exe()
        .map_err(|error| BenchError::Setup(format!("locating the vigil executable: {error}")))
}

/// Finds `program` on `PATH`.
pub fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|directory| directory.join(program))
        .find(|candidate| candidate.is_file())
}

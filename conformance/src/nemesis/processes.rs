//! The `vigil master` and `vigil proxy` processes of a nemesis run: config files, spawning,
//! signals by PID, RSS, and stopping every one at the end.
//!
//! Why a guard: a harness that panics must not leave five masters and a proxy running (or
//! frozen by SIGSTOP) on the machine. [`Processes`] kills and reaps every child it started when
//! dropped, by the child's own PID, whatever path the run took. A harness that is SIGKILLed runs
//! no `Drop`; for that case every child is started by `vigil::child_process::spawn`, so the
//! kernel SIGKILLs it when the harness dies (docs/reliability.md, "Children of a killed harness").

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use vigil::config::{
    ClusterAddresses, HostSettings, MasterAddress, MasterAuth, MasterConfig, ProxyConfig,
};

use super::NemesisError;

/// What one process needs to be (re)started.
#[derive(Debug)]
struct Spec {
    name: String,
    arguments: Vec<String>,
    log: PathBuf,
}

/// One child process.
#[derive(Debug)]
struct Running {
    spec: Spec,
    child: Option<Child>,
}

/// The children of a run, killed on drop.
#[derive(Debug)]
pub struct Processes {
    vigil: PathBuf,
    children: Vec<Running>,
}

/// Addresses of a process's servers on 127.0.0.1.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// The protocol port (masters and proxies dial it).
    pub listen: std::net::SocketAddr,
    /// The HTTP port (`/metrics`, `/status`).
    pub http: std::net::SocketAddr,
}

/// A free port on 127.0.0.1 (`vigil::child_process::free_loopback_address`).
pub fn free_loopback_address() -> Result<std::net::SocketAddr, NemesisError> {
    vigil::child_process::free_loopback_address().map_err(NemesisError::io("bind"))
}

impl Endpoints {
    /// Two fresh loopback ports.
    pub fn fresh() -> Result<Endpoints, NemesisError> {
        Ok(Endpoints {
            listen: free_loopback_address()?,
            http: free_loopback_address()?,
        })
    }
}

/// The settings every process of the run shares.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The cluster's name.
    pub cluster: String,
    /// Protocol limits.
    pub protocol: vigil_core::Config,
    /// Host settings (tick length, backoff).
    pub host: HostSettings,
    /// Where configs, data, traces and logs go.
    pub directory: PathBuf,
    /// Whether masters and the proxy write trace files (`traces/m<i>.ndjson`, `traces/p1.ndjson`).
    pub traces: bool,
}

/// The cluster secret file every master and the proxy read, under `directory`.
pub fn cluster_secret_path(directory: &Path) -> PathBuf {
    directory.join("configs/cluster.secret")
}

/// The client token file the proxy reads, under `directory`.
pub fn client_token_path(directory: &Path) -> PathBuf {
    directory.join("configs/client.token")
}

/// Writes a fresh cluster secret and client token (mode 600, as the processes require) and
/// returns the token for the workload's clients.
pub fn write_secrets(directory: &Path) -> Result<vigil::auth::Token, NemesisError> {
    use std::os::unix::fs::PermissionsExt;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let pid = std::process::id();
    let secret = format!("nemesis-cluster-secret-{pid}-{stamp}");
    let token = format!("nemesis-client-token-{pid}-{stamp}");
    for (path, text) in [
        (cluster_secret_path(directory), &secret),
        (client_token_path(directory), &token),
    ] {
        std::fs::write(&path, text).map_err(NemesisError::io("writing a secret"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(NemesisError::io("restricting a secret"))?;
    }
    Ok(vigil::auth::Token::from_bytes(token.as_bytes()))
}

impl Layout {
    /// The config of master `node`; `peers[j]` is the address it dials for master `j`.
    pub fn master_config(&self, node: usize, own: &Endpoints, peers: &[String]) -> MasterConfig {
        MasterConfig {
            cluster: self.cluster.clone(),
            node_id: node as u64,
            listen: own.listen,
            data_dir: self.directory.join(format!("data/master-{node}")),
            metrics_listen: Some(own.http),
            masters: peers
                .iter()
                .enumerate()
                .map(|(id, address)| MasterAddress {
                    id: id as u64,
                    address: address.clone(),
                })
                .collect(),
            host: self.host.clone(),
            protocol: self.protocol.clone(),
            trace_file: self
                .traces
                .then(|| self.directory.join(format!("traces/m{node}.ndjson"))),
            auth: MasterAuth {
                cluster_secret_file: Some(cluster_secret_path(&self.directory)),
                ..MasterAuth::default()
            },
        }
    }

    /// The proxy's config: it dials the masters directly.
    pub fn proxy_config(&self, own: &Endpoints, masters: &[Endpoints]) -> ProxyConfig {
        ProxyConfig {
            listen: own.listen,
            metrics_listen: Some(own.http),
            clusters: vec![ClusterAddresses {
                name: self.cluster.clone(),
                masters: masters.iter().map(|m| m.listen.to_string()).collect(),
                cluster_secret_file: Some(cluster_secret_path(&self.directory)),
                cluster_secret_env: None,
                client_token_file: Some(client_token_path(&self.directory)),
                client_token_env: None,
                insecure: false,
            }],
            host: self.host.clone(),
            protocol: self.protocol.clone(),
            trace_file: self.traces.then(|| self.directory.join("traces/p1.ndjson")),
        }
    }
}

/// Writes `config` as TOML to `path`.
pub fn write_config<T: serde::Serialize>(path: &Path, config: &T) -> Result<(), NemesisError> {
    let text = toml::to_string(config).map_err(|error| NemesisError::Setup(error.to_string()))?;
    std::fs::write(path, text).map_err(NemesisError::io("writing a config"))
}

impl Processes {
    /// No children yet; `vigil` is the binary to run.
    pub fn new(vigil: PathBuf) -> Processes {
        Processes {
            vigil,
            children: Vec::new(),
        }
    }

    /// Starts `vigil <role> --config <config>` with output in `<name>.log`; returns its index.
    pub fn start(
        &mut self,
        name: &str,
        role: &str,
        config: &Path,
        logs: &Path,
    ) -> Result<usize, NemesisError> {
        let spec = Spec {
            name: name.to_string(),
            arguments: vec![
                role.to_string(),
                "--config".to_string(),
                config.display().to_string(),
            ],
            log: logs.join(format!("{name}.log")),
        };
        self.children.push(Running { spec, child: None });
        let index = self.children.len() - 1;
        self.spawn(index)?;
        Ok(index)
    }

    fn spawn(&mut self, index: usize) -> Result<(), NemesisError> {
        let running = &mut self.children[index];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&running.spec.log)
            .map_err(NemesisError::io("opening a log"))?;
        let errors = log.try_clone().map_err(NemesisError::io("opening a log"))?;
        let mut command = Command::new(&self.vigil);
        command
            .args(&running.spec.arguments)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(errors);
        let child = vigil::child_process::spawn(command).map_err(|error| {
            NemesisError::Setup(format!(
                "starting {} ({}): {error}",
                running.spec.name,
                self.vigil.display()
            ))
        })?;
        running.child = Some(child);
        Ok(())
    }

    /// The PID of child `index`, if running.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.children[index].child.as_ref().map(Child::id)
    }

    /// Sends `signal` to child `index` by its PID.
    pub fn signal(&self, index: usize, signal: Signal) -> Result<(), NemesisError> {
        let pid = self
            .pid(index)
            .ok_or_else(|| NemesisError::Setup(format!("{} is not running", self.name(index))))?;
        signal::kill(Pid::from_raw(pid as i32), signal).map_err(|error| {
            NemesisError::Setup(format!("{signal} to {}: {error}", self.name(index)))
        })
    }

    /// The name of child `index`.
    pub fn name(&self, index: usize) -> &str {
        &self.children[index].spec.name
    }

    /// SIGKILLs child `index` and reaps it.
    pub fn kill(&mut self, index: usize) -> Result<(), NemesisError> {
        if let Some(mut child) = self.children[index].child.take() {
            child.kill().map_err(NemesisError::io("SIGKILL"))?;
            child.wait().map_err(NemesisError::io("reaping a child"))?;
        }
        Ok(())
    }

    /// Starts child `index` again with its old config (and data directory).
    pub fn restart(&mut self, index: usize) -> Result<(), NemesisError> {
        assert!(
            self.children[index].child.is_none(),
            "restart of a running process"
        );
        self.spawn(index)
    }

    /// Names of children that exited on their own (a crash the nemesis did not cause).
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

    /// Resident set size of child `index` from `/proc/PID/status`, bytes.
    pub fn resident_bytes(&self, index: usize) -> Result<u64, NemesisError> {
        let pid = self
            .pid(index)
            .ok_or_else(|| NemesisError::Setup(format!("{} is not running", self.name(index))))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(NemesisError::io("reading /proc/PID/status"))?;
        resident_bytes_of(&status)
            .ok_or_else(|| NemesisError::Setup(format!("no VmRSS in /proc/{pid}/status")))
    }

    /// Stops every child: SIGCONT (a frozen one cannot exit), SIGTERM, up to `grace` to exit
    /// (masters close their trace files), then SIGKILL. Returns the children that needed it.
    pub fn stop_all(&mut self, grace: Duration) -> Vec<String> {
        for running in &self.children {
            if let Some(child) = &running.child {
                let pid = Pid::from_raw(child.id() as i32);
                let _ = signal::kill(pid, Signal::SIGCONT);
                let _ = signal::kill(pid, Signal::SIGTERM);
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
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
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

impl Drop for Processes {
    fn drop(&mut self) {
        for running in &mut self.children {
            if let Some(mut child) = running.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `VmRSS:    1234 kB` → bytes.
fn resident_bytes_of(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kilobytes * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_size_is_read_from_proc_status() {
        let status = "Name:\tvigil\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t3\n";
        assert_eq!(resident_bytes_of(status), Some(2048 * 1024));
        assert_eq!(resident_bytes_of("Name:\tvigil\n"), None);
    }

    #[test]
    fn children_are_killed_when_the_guard_drops() {
        let mut processes = Processes::new(PathBuf::from("sleep"));
        let directory = tempfile::tempdir().unwrap();
        processes.children.push(Running {
            spec: Spec {
                name: "sleeper".into(),
                arguments: vec!["30".into()],
                log: directory.path().join("sleeper.log"),
            },
            child: None,
        });
        processes.spawn(0).unwrap();
        let pid = processes.pid(0).unwrap();
        processes.signal(0, Signal::SIGSTOP).unwrap();
        drop(processes);
        // Reaped: the PID no longer names our child (kill with no signal fails).
        assert!(signal::kill(Pid::from_raw(pid as i32), None).is_err());
    }
}

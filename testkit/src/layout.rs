//! A cluster of real processes on disk: where its configs, data, logs and traces go, the TOML
//! config of each master and of the proxy, the secrets they read, and starting each one as
//! `vigil <role> --config <file>` under a [`Children`] guard.
//!
//! Every master listens on its own loopback port and serves `/metrics` and `/status` on another
//! ([`Endpoints`]), so a harness can watch roles, eviction and commit indexes without going
//! through the proxy. The harness says which address each master dials for each peer: the
//! peer's own, or a forwarder it can cut (the nemesis's links).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use vigil::auth::Token;
use vigil::config::{
    ClusterAddresses, HostSettings, MasterAddress, MasterAuth, MasterConfig, ProxyConfig,
};

use crate::{ports, Children, TestkitError};

/// The subdirectories of a cluster's directory: configs and secrets, the masters' data
/// directories, the processes' logs, their trace files.
const SUBDIRECTORIES: [&str; 4] = ["configs", "data", "logs", "traces"];
/// The child name of the proxy (its config, log and trace file are named after it).
pub const PROXY_NAME: &str = "p1";

/// Addresses of a process's servers on 127.0.0.1.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// The protocol port (masters and proxies dial it).
    pub listen: SocketAddr,
    /// The HTTP port (`/metrics`, `/status`).
    pub http: SocketAddr,
}

impl Endpoints {
    /// Endpoints for `count` processes, every port distinct and free.
    pub fn fresh(count: usize) -> Result<Vec<Endpoints>, TestkitError> {
        let addresses = ports::free_loopback_addresses(2 * count)?;
        Ok(addresses
            .chunks(2)
            .map(|pair| Endpoints {
                listen: pair[0],
                http: pair[1],
            })
            .collect())
    }
}

/// How the processes of a cluster authenticate each other and their clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// No authentication (`insecure = true`): a loopback benchmark, whose handshake cost is per
    /// connection, not per request, measures the same either way.
    Insecure,
    /// A cluster secret and a client token in files under `configs/` (mode 600), written by
    /// [`Layout::write_secrets`], as operators deploy vigil (`docs/security.md`).
    SecretFiles,
}

/// The settings every process of a cluster shares, and where its files go.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The cluster's name.
    pub cluster: String,
    /// Protocol limits (`masters` is the cluster's size).
    pub protocol: vigil_core::Config,
    /// Host settings (tick length, backoff).
    pub host: HostSettings,
    /// Where configs, data, logs and traces go (in [`SUBDIRECTORIES`]).
    pub directory: PathBuf,
    /// Whether masters and the proxy write trace files (`traces/m<i>.ndjson`, `traces/p1.ndjson`).
    pub traces: bool,
    /// Authentication between the processes and of clients.
    pub security: Security,
}

/// The child name of master `node` (its config, log and trace file are named after it).
pub fn master_name(node: usize) -> String {
    format!("m{node}")
}

impl Layout {
    /// Empties (or creates) the cluster's subdirectories, so nothing of an earlier run remains.
    pub fn prepare_directories(&self) -> Result<(), TestkitError> {
        for subdirectory in SUBDIRECTORIES {
            let path = self.directory.join(subdirectory);
            if path.exists() {
                std::fs::remove_dir_all(&path)
                    .map_err(TestkitError::io(format!("clearing {}", path.display())))?;
            }
            std::fs::create_dir_all(&path)
                .map_err(TestkitError::io(format!("creating {}", path.display())))?;
        }
        Ok(())
    }

    /// Where the processes' logs go (`<name>.log`).
    pub fn logs_directory(&self) -> PathBuf {
        self.directory.join("logs")
    }

    /// The cluster secret file every master and the proxy read ([`Security::SecretFiles`]).
    pub fn cluster_secret_path(&self) -> PathBuf {
        self.directory.join("configs/cluster.secret")
    }

    /// The client token file the proxy reads ([`Security::SecretFiles`]).
    pub fn client_token_path(&self) -> PathBuf {
        self.directory.join("configs/client.token")
    }

    /// Writes a fresh cluster secret and client token (mode 600, as the processes require) and
    /// returns the token for the harness's clients.
    pub fn write_secrets(&self) -> Result<Token, TestkitError> {
        use std::os::unix::fs::PermissionsExt;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let pid = std::process::id();
        let secret = format!("{}-cluster-secret-{pid}-{stamp}", self.cluster);
        let token = format!("{}-client-token-{pid}-{stamp}", self.cluster);
        for (path, text) in [
            (self.cluster_secret_path(), &secret),
            (self.client_token_path(), &token),
        ] {
            std::fs::write(&path, text).map_err(TestkitError::io("writing a secret"))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(TestkitError::io("restricting a secret"))?;
        }
        Ok(Token::from_bytes(token.as_bytes()))
    }

    /// The config of master `node`; `peers[j]` is the address it dials for master `j`.
    pub fn master_config(&self, node: usize, own: &Endpoints, peers: &[String]) -> MasterConfig {
        let auth = match self.security {
            Security::Insecure => MasterAuth {
                insecure: true,
                ..MasterAuth::default()
            },
            Security::SecretFiles => MasterAuth {
                cluster_secret_file: Some(self.cluster_secret_path()),
                ..MasterAuth::default()
            },
        };
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
            trace_file: self.traces.then(|| {
                self.directory
                    .join(format!("traces/{}.ndjson", master_name(node)))
            }),
            auth,
        }
    }

    /// The proxy's config: it dials the masters directly.
    pub fn proxy_config(&self, own: &Endpoints, masters: &[Endpoints]) -> ProxyConfig {
        let secure = self.security == Security::SecretFiles;
        ProxyConfig {
            listen: own.listen,
            metrics_listen: Some(own.http),
            clusters: vec![ClusterAddresses {
                name: self.cluster.clone(),
                masters: masters
                    .iter()
                    .map(|master| master.listen.to_string())
                    .collect(),
                cluster_secret_file: secure.then(|| self.cluster_secret_path()),
                cluster_secret_env: None,
                client_token_file: secure.then(|| self.client_token_path()),
                client_token_env: None,
                insecure: !secure,
            }],
            host: self.host.clone(),
            protocol: self.protocol.clone(),
            trace_file: self
                .traces
                .then(|| self.directory.join(format!("traces/{PROXY_NAME}.ndjson"))),
        }
    }

    /// Writes `config` to `configs/m<node>.toml` and starts `vigil master` on it as the child
    /// called `m<node>`; returns its index in `children`.
    pub fn start_master(
        &self,
        children: &mut Children,
        vigil: &Path,
        node: usize,
        config: &MasterConfig,
    ) -> Result<usize, TestkitError> {
        self.start(children, vigil, &master_name(node), "master", config)
    }

    /// Writes `config` to `configs/p1.toml` and starts `vigil proxy` on it as the child called
    /// `p1`; returns its index in `children`.
    pub fn start_proxy(
        &self,
        children: &mut Children,
        vigil: &Path,
        config: &ProxyConfig,
    ) -> Result<usize, TestkitError> {
        self.start(children, vigil, PROXY_NAME, "proxy", config)
    }

    fn start<T: serde::Serialize>(
        &self,
        children: &mut Children,
        vigil: &Path,
        name: &str,
        role: &str,
        config: &T,
    ) -> Result<usize, TestkitError> {
        let path = self.directory.join(format!("configs/{name}.toml"));
        write_config(&path, config)?;
        let arguments = vec![
            role.to_string(),
            "--config".to_string(),
            path.display().to_string(),
        ];
        let log = self.logs_directory().join(format!("{name}.log"));
        children.start(name, vigil, arguments, &log)
    }
}

/// Writes `config` as TOML to `path`.
pub fn write_config<T: serde::Serialize>(path: &Path, config: &T) -> Result<(), TestkitError> {
    let text = toml::to_string(config)
        .map_err(|error| TestkitError::Config(format!("{}: {error}", path.display())))?;
    std::fs::write(path, text).map_err(TestkitError::io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(directory: &Path, security: Security) -> Layout {
        Layout {
            cluster: "kit".to_string(),
            protocol: vigil_core::Config {
                masters: 3,
                ..vigil_core::Config::default()
            },
            host: HostSettings::default(),
            directory: directory.to_path_buf(),
            traces: security == Security::SecretFiles,
            security,
        }
    }

    fn configs(layout: &Layout) -> (MasterConfig, ProxyConfig) {
        let endpoints = Endpoints::fresh(3).unwrap();
        let peers: Vec<String> = endpoints.iter().map(|e| e.listen.to_string()).collect();
        let proxy = Endpoints::fresh(1).unwrap().remove(0);
        (
            layout.master_config(1, &endpoints[1], &peers),
            layout.proxy_config(&proxy, &endpoints),
        )
    }

    #[test]
    fn written_configs_load_and_validate_as_vigil_reads_them() {
        for security in [Security::Insecure, Security::SecretFiles] {
            let directory = tempfile::tempdir().unwrap();
            let layout = layout(directory.path(), security);
            layout.prepare_directories().unwrap();
            if security == Security::SecretFiles {
                layout.write_secrets().unwrap();
            }
            let (master, proxy) = configs(&layout);
            let master_path = directory.path().join("configs/m1.toml");
            let proxy_path = directory.path().join("configs/p1.toml");
            write_config(&master_path, &master).unwrap();
            write_config(&proxy_path, &proxy).unwrap();
            let master = MasterConfig::load(&master_path).expect("the master's config loads");
            let proxy = ProxyConfig::load(&proxy_path).expect("the proxy's config loads");
            assert_eq!(master.node_id, 1);
            assert_eq!(master.masters.len(), 3);
            assert_eq!(master.auth.insecure, security == Security::Insecure);
            assert_eq!(proxy.clusters[0].insecure, security == Security::Insecure);
            assert_eq!(master.trace_file.is_some(), layout.traces);
            assert!(master.data_dir.starts_with(directory.path().join("data")));
        }
    }

    #[test]
    fn endpoints_are_distinct() {
        let endpoints = Endpoints::fresh(6).unwrap();
        let mut ports: Vec<u16> = endpoints
            .iter()
            .flat_map(|e| [e.listen.port(), e.http.port()])
            .collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 12);
    }
}

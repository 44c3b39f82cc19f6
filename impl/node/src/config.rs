//! TOML configuration of `vigil master` and `vigil proxy`, validated at start.
//!
//! Why validation names the field: an operator deploying five machines edits five files; an
//! error such as `masters[2].address: "10.0.0.3" has no port` points at the line to fix, where
//! a bare parse error or a node that starts and never elects does not. The protocol's own limits
//! (`docs/protocol.md` §12) live in the `[protocol]` table and are checked by
//! `vigil_core::Config::validate`; this file adds what only the host knows (addresses, paths,
//! tick length, queue sizes).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::codec::FRAME_BYTES_MAX_DEFAULT;
use crate::transport::{LinkSettings, ServerLimits};

/// A configuration that cannot run; `field` is the TOML path (`masters[2].address`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown field, wrong type…).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// A field has a value that cannot work.
    #[error("{field}: {reason}")]
    Invalid {
        /// TOML path of the field.
        field: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Host settings shared by masters and proxies: time and transport limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostSettings {
    /// Wall-clock length of one protocol tick. Heartbeat period = this × `heartbeat_interval_ticks`.
    pub tick_interval_ms: u64,
    /// Messages queued per peer link before new ones are dropped (and counted).
    pub peer_queue_messages_max: usize,
    /// Largest frame read or written; larger ones close the connection.
    pub frame_bytes_max: usize,
    /// Connections a server holds open at most.
    pub connections_max: usize,
    /// Time a dialer has to complete the handshake.
    pub handshake_timeout_ms: u64,
    /// First delay before redialing a peer.
    pub reconnect_backoff_initial_ms: u64,
    /// Cap of the redial delay (doubles from the initial delay).
    pub reconnect_backoff_max_ms: u64,
}

impl Default for HostSettings {
    fn default() -> HostSettings {
        HostSettings {
            tick_interval_ms: 50,
            peer_queue_messages_max: 1024,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            connections_max: 1024,
            handshake_timeout_ms: 5000,
            reconnect_backoff_initial_ms: 20,
            reconnect_backoff_max_ms: 1000,
        }
    }
}

impl HostSettings {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let positive = [
            ("tick_interval_ms", self.tick_interval_ms),
            (
                "peer_queue_messages_max",
                self.peer_queue_messages_max as u64,
            ),
            ("frame_bytes_max", self.frame_bytes_max as u64),
            ("connections_max", self.connections_max as u64),
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            (
                "reconnect_backoff_initial_ms",
                self.reconnect_backoff_initial_ms,
            ),
            ("reconnect_backoff_max_ms", self.reconnect_backoff_max_ms),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(invalid(format!("{prefix}{name}"), "must be at least 1"));
            }
        }
        if self.frame_bytes_max < 1024 {
            return Err(invalid(
                format!("{prefix}frame_bytes_max"),
                "must be at least 1024 bytes",
            ));
        }
        if self.reconnect_backoff_max_ms < self.reconnect_backoff_initial_ms {
            return Err(invalid(
                format!("{prefix}reconnect_backoff_max_ms"),
                "must be at least reconnect_backoff_initial_ms",
            ));
        }
        Ok(())
    }

    /// One protocol tick as a `Duration`.
    pub fn tick_interval(&self) -> Duration {
        Duration::from_millis(self.tick_interval_ms)
    }

    /// Server limits derived from these settings.
    pub fn server_limits(&self) -> ServerLimits {
        ServerLimits {
            connections_max: self.connections_max,
            frame_bytes_max: self.frame_bytes_max,
            handshake_timeout: Duration::from_millis(self.handshake_timeout_ms),
        }
    }

    /// Outbound link settings derived from these settings.
    pub fn link_settings(&self) -> LinkSettings {
        LinkSettings {
            queue_messages_max: self.peer_queue_messages_max,
            frame_bytes_max: self.frame_bytes_max,
            backoff_initial: Duration::from_millis(self.reconnect_backoff_initial_ms),
            backoff_max: Duration::from_millis(self.reconnect_backoff_max_ms),
            connect_timeout: Duration::from_millis(self.handshake_timeout_ms),
        }
    }
}

/// One master of the static configuration, as every master and proxy must list it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterAddress {
    /// Node id, `0..N`; the list must hold every id once, in order.
    pub id: u64,
    /// `host:port` other masters and proxies dial.
    pub address: String,
}

/// `vigil master --config FILE`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterConfig {
    /// The cluster's name; dialers naming another cluster are refused.
    pub cluster: String,
    /// This master's id in `masters`.
    pub node_id: u64,
    /// Address to listen on (`0.0.0.0:7000` on a real machine).
    pub listen: SocketAddr,
    /// Directory for this master's log, metadata and snapshot.
    pub data_dir: PathBuf,
    /// HTTP address for `/metrics` (Prometheus) and `/status` (JSON); none: no endpoint.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Every master of the cluster, this one included, by id.
    pub masters: Vec<MasterAddress>,
    /// Time and transport settings.
    #[serde(default)]
    pub host: HostSettings,
    /// Protocol limits (`docs/protocol.md` §12); `masters` is taken from the list above.
    #[serde(default)]
    pub protocol: vigil_core::Config,
    /// Trace events (NDJSON) for conformance; none: tracing off (the default, zero cost).
    #[serde(default)]
    pub trace_file: Option<PathBuf>,
}

/// One cluster a proxy serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterAddresses {
    /// The name clients put in their requests.
    pub name: String,
    /// `host:port` of every master, by node id.
    pub masters: Vec<String>,
}

/// `vigil proxy --config FILE`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address clients connect to.
    pub listen: SocketAddr,
    /// HTTP address for `/metrics` (Prometheus) and `/status` (JSON); none: no endpoint.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// The clusters served.
    pub clusters: Vec<ClusterAddresses>,
    /// Time and transport settings.
    #[serde(default)]
    pub host: HostSettings,
    /// Proxy limits (`in_flight_max`, `redirects_max`, `request_timeout_ticks`, …).
    #[serde(default)]
    pub protocol: vigil_core::Config,
    /// Trace events (NDJSON) for conformance; none: tracing off.
    #[serde(default)]
    pub trace_file: Option<PathBuf>,
}

fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|error| ConfigError::Parse {
        path: path.to_path_buf(),
        message: error.to_string(),
    })
}

/// Checks `host:port` with a numeric port (the host is resolved when dialing).
fn validate_address(field: &str, address: &str) -> Result<(), ConfigError> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(invalid(
            field,
            format!("{address:?} has no port (expected host:port)"),
        ));
    };
    if host.is_empty() {
        return Err(invalid(field, format!("{address:?} has no host")));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(()),
        _ => Err(invalid(
            field,
            format!("{address:?}: port must be 1..65535"),
        )),
    }
}

fn protocol_error(error: vigil_core::ConfigError) -> ConfigError {
    invalid("protocol", error.to_string())
}

impl MasterConfig {
    /// Reads and validates a master's config file.
    pub fn load(path: &Path) -> Result<MasterConfig, ConfigError> {
        let mut config: MasterConfig = read_toml(path)?;
        config.protocol.masters = config.masters.len() as u64;
        config.validate()?;
        Ok(config)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        vigil_core::validate_cluster_name(&self.cluster)
            .map_err(|error| invalid("cluster", error.to_string()))?;
        if self.masters.is_empty() {
            return Err(invalid("masters", "lists no master"));
        }
        for (index, master) in self.masters.iter().enumerate() {
            if master.id != index as u64 {
                return Err(invalid(
                    format!("masters[{index}].id"),
                    format!("is {}, expected {index} (ids are 0..N in order)", master.id),
                ));
            }
            validate_address(&format!("masters[{index}].address"), &master.address)?;
        }
        let distinct: BTreeSet<&str> = self.masters.iter().map(|m| m.address.as_str()).collect();
        if distinct.len() != self.masters.len() {
            return Err(invalid("masters", "an address is listed twice"));
        }
        if self.node_id >= self.masters.len() as u64 {
            return Err(invalid(
                "node_id",
                format!("{} is not in 0..{}", self.node_id, self.masters.len()),
            ));
        }
        if self.protocol.masters != self.masters.len() as u64 {
            return Err(invalid(
                "protocol.masters",
                "must equal the number of [[masters]] entries (or be left out)",
            ));
        }
        self.protocol.validate().map_err(protocol_error)?;
        self.host.validate("host.")
    }
}

impl ProxyConfig {
    /// Reads and validates a proxy's config file.
    pub fn load(path: &Path) -> Result<ProxyConfig, ConfigError> {
        let config: ProxyConfig = read_toml(path)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.clusters.is_empty() {
            return Err(invalid("clusters", "lists no cluster"));
        }
        let mut names = BTreeSet::new();
        for (index, cluster) in self.clusters.iter().enumerate() {
            vigil_core::validate_cluster_name(&cluster.name)
                .map_err(|error| invalid(format!("clusters[{index}].name"), error.to_string()))?;
            if !names.insert(cluster.name.as_str()) {
                return Err(invalid(
                    format!("clusters[{index}].name"),
                    format!("{:?} is listed twice", cluster.name),
                ));
            }
            if cluster.masters.is_empty() {
                return Err(invalid(
                    format!("clusters[{index}].masters"),
                    "lists no master",
                ));
            }
            for (master, address) in cluster.masters.iter().enumerate() {
                validate_address(&format!("clusters[{index}].masters[{master}]"), address)?;
            }
        }
        self.protocol.validate().map_err(protocol_error)?;
        self.host.validate("host.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = r#"
cluster = "prod"
node_id = 2
listen = "127.0.0.1:7002"
data_dir = "/tmp/vigil-2"
masters = [
  { id = 0, address = "10.0.0.1:7000" },
  { id = 1, address = "10.0.0.2:7000" },
  { id = 2, address = "10.0.0.3:7000" },
]
[host]
tick_interval_ms = 20
[protocol]
eviction_threshold = 4
"#;

    #[test]
    fn master_config_parses_and_validates() {
        let mut config: MasterConfig = toml::from_str(MASTER).unwrap();
        config.protocol.masters = config.masters.len() as u64;
        config.validate().unwrap();
        assert_eq!(config.host.tick_interval_ms, 20);
        assert_eq!(config.protocol.eviction_threshold, 4);
    }

    #[test]
    fn errors_name_the_field() {
        let text = MASTER.replace("10.0.0.3:7000", "10.0.0.3");
        let mut config: MasterConfig = toml::from_str(&text).unwrap();
        config.protocol.masters = 3;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.starts_with("masters[2].address:"), "{message}");

        let text = MASTER.replace("node_id = 2", "node_id = 5");
        let mut config: MasterConfig = toml::from_str(&text).unwrap();
        config.protocol.masters = 3;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.starts_with("node_id:"), "{message}");

        let text = MASTER.replace("eviction_threshold = 4", "eviction_threshold = 40");
        let mut config: MasterConfig = toml::from_str(&text).unwrap();
        config.protocol.masters = 3;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("eviction_threshold"), "{message}");

        let text = MASTER.replace("tick_interval_ms = 20", "tick_interval_ms = 0");
        let mut config: MasterConfig = toml::from_str(&text).unwrap();
        config.protocol.masters = 3;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.starts_with("host.tick_interval_ms:"), "{message}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = format!("heartbeat_ms = 3\n{MASTER}");
        let error = toml::from_str::<MasterConfig>(&text).unwrap_err();
        assert!(error.to_string().contains("heartbeat_ms"), "{error}");
    }

    #[test]
    fn proxy_config_names_the_cluster_field() {
        let text = r#"
listen = "127.0.0.1:7400"
[[clusters]]
name = "prod"
masters = ["10.0.0.1:7000", "10.0.0.2"]
"#;
        let config: ProxyConfig = toml::from_str(text).unwrap();
        let message = config.validate().unwrap_err().to_string();
        assert!(message.starts_with("clusters[0].masters[1]:"), "{message}");
    }
}

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

use crate::auth::{Authentication, Secret};
use crate::codec::{FRAME_BYTES_MAX_DEFAULT, FRAME_BYTES_MAX_LIMIT, PEER_FRAME_BYTES_MAX_DEFAULT};
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
    /// Largest frame read from a client or from a peer before its handshake (the largest
    /// request); a larger one closes the connection.
    pub frame_bytes_max: usize,
    /// Largest frame read from an authenticated master or proxy, and largest frame written:
    /// a snapshot of the whole store (`CatchUp`, `Promise`) and a `Range` reply must fit, so
    /// it bounds the store an operator may keep. Reading one costs up to this much memory per
    /// peer connection; peers are the cluster's own masters and proxies.
    pub peer_frame_bytes_max: usize,
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
            tick_interval_ms: 100,
            peer_queue_messages_max: 1024,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            peer_frame_bytes_max: PEER_FRAME_BYTES_MAX_DEFAULT,
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
        if self.peer_frame_bytes_max < self.frame_bytes_max
            || self.peer_frame_bytes_max > FRAME_BYTES_MAX_LIMIT
        {
            return Err(invalid(
                format!("{prefix}peer_frame_bytes_max"),
                format!(
                    "must be between frame_bytes_max ({}) and {FRAME_BYTES_MAX_LIMIT} bytes (the \
                     frame's 4-byte length)",
                    self.frame_bytes_max
                ),
            ));
        }
        if self.frame_bytes_max > FRAME_BYTES_MAX_LIMIT {
            return Err(invalid(
                format!("{prefix}frame_bytes_max"),
                format!(
                    "must be at most {FRAME_BYTES_MAX_LIMIT} bytes (the frame's 4-byte length)"
                ),
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

    /// Outbound link settings derived from these settings, without authentication (the
    /// caller sets the cluster secret, which is not a host setting).
    pub fn link_settings(&self) -> LinkSettings {
        LinkSettings {
            queue_messages_max: self.peer_queue_messages_max,
            frame_bytes_max: self.frame_bytes_max,
            peer_frame_bytes_max: self.peer_frame_bytes_max,
            backoff_initial: Duration::from_millis(self.reconnect_backoff_initial_ms),
            backoff_max: Duration::from_millis(self.reconnect_backoff_max_ms),
            connect_timeout: Duration::from_millis(self.handshake_timeout_ms),
            authentication: Authentication::Insecure,
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
    /// Where the cluster secret comes from (`docs/security.md`).
    #[serde(default)]
    pub auth: MasterAuth,
}

/// A master's `[auth]` table: the cluster secret every master and proxy of the cluster must
/// prove. Exactly one source, or `insecure = true`; a master with neither refuses to start.
/// Secrets are never accepted on the command line (they would show in `ps`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MasterAuth {
    /// A file holding the secret (at least 16 bytes; mode 600: not readable by others).
    pub cluster_secret_file: Option<PathBuf>,
    /// The name of an environment variable holding the secret.
    pub cluster_secret_env: Option<String>,
    /// Run without authentication: anyone who can reach the port may join. Trusted
    /// networks and tests only.
    pub insecure: bool,
}

/// One cluster a proxy serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterAddresses {
    /// The name clients put in their requests.
    pub name: String,
    /// `host:port` of every master, by node id.
    pub masters: Vec<String>,
    /// A file holding the cluster's secret, proved to its masters.
    #[serde(default)]
    pub cluster_secret_file: Option<PathBuf>,
    /// The name of an environment variable holding the cluster's secret.
    #[serde(default)]
    pub cluster_secret_env: Option<String>,
    /// A file holding the token clients must present for this cluster.
    #[serde(default)]
    pub client_token_file: Option<PathBuf>,
    /// The name of an environment variable holding the client token.
    #[serde(default)]
    pub client_token_env: Option<String>,
    /// No cluster secret and no client token for this cluster. Trusted networks and tests only.
    #[serde(default)]
    pub insecure: bool,
}

/// Where one secret comes from: `<prefix>_file` or `<prefix>_env`, checked for exactly one.
struct SecretSource<'a> {
    /// TOML path of the table holding the two fields (`auth.`, `clusters[0].`).
    table: String,
    /// Field name prefix (`cluster_secret`, `client_token`).
    prefix: &'static str,
    file: &'a Option<PathBuf>,
    environment: &'a Option<String>,
}

impl SecretSource<'_> {
    /// Checks the fields without reading anything: exactly one source unless `insecure`.
    fn validate(&self, insecure: bool) -> Result<(), ConfigError> {
        let (table, prefix) = (&self.table, self.prefix);
        match (self.file, self.environment, insecure) {
            (None, None, true) => Ok(()),
            (_, _, true) => Err(invalid(
                format!("{table}insecure"),
                format!("is true but {prefix}_file or {prefix}_env is set too; choose one"),
            )),
            (Some(_), Some(_), false) => Err(invalid(
                format!("{table}{prefix}_file"),
                format!("set {prefix}_file or {prefix}_env, not both"),
            )),
            (None, None, false) => Err(invalid(
                format!("{table}{prefix}_file"),
                format!(
                    "missing: set {table}{prefix}_file (a file only this user can read) or \
                     {table}{prefix}_env (an environment variable's name), or {table}insecure = \
                     true to run without authentication (docs/security.md)"
                ),
            )),
            (Some(_), None, false) | (None, Some(_), false) => Ok(()),
        }
    }

    /// Reads the secret (after `validate`); `None` if there is no source.
    fn load(&self) -> Result<Option<Secret>, ConfigError> {
        let loaded = match (self.file, self.environment) {
            (Some(path), _) => Secret::from_file(path),
            (None, Some(name)) => Secret::from_environment(name),
            (None, None) => return Ok(None),
        };
        loaded
            .map(Some)
            .map_err(|error| invalid(format!("{}{}", self.table, self.prefix), error.to_string()))
    }
}

impl MasterAuth {
    fn source(&self) -> SecretSource<'_> {
        SecretSource {
            table: "auth.".to_string(),
            prefix: "cluster_secret",
            file: &self.cluster_secret_file,
            environment: &self.cluster_secret_env,
        }
    }

    /// Reads the secret: what the master's handshakes require.
    pub fn authentication(&self) -> Result<Authentication, ConfigError> {
        self.source().validate(self.insecure)?;
        Ok(match self.source().load()? {
            Some(secret) => Authentication::ClusterSecret(secret),
            None => Authentication::Insecure,
        })
    }
}

impl ClusterAddresses {
    fn sources(&self, index: usize) -> [SecretSource<'_>; 2] {
        let table = format!("clusters[{index}].");
        [
            SecretSource {
                table: table.clone(),
                prefix: "cluster_secret",
                file: &self.cluster_secret_file,
                environment: &self.cluster_secret_env,
            },
            SecretSource {
                table,
                prefix: "client_token",
                file: &self.client_token_file,
                environment: &self.client_token_env,
            },
        ]
    }

    /// Reads the cluster secret and the client token of the cluster at `index` in the file.
    pub fn security(&self, index: usize) -> Result<(Authentication, Option<Secret>), ConfigError> {
        let [secret, token] = self.sources(index);
        secret.validate(self.insecure)?;
        token.validate(self.insecure)?;
        let authentication = match secret.load()? {
            Some(secret) => Authentication::ClusterSecret(secret),
            None => Authentication::Insecure,
        };
        Ok((authentication, token.load()?))
    }
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

fn read_toml(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_toml<T: for<'de> Deserialize<'de>>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|error| ConfigError::Parse {
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
        MasterConfig::parse(&read_toml(path)?, path)
    }

    /// Parses and validates a master's config; `path` is only named in errors.
    pub fn parse(text: &str, path: &Path) -> Result<MasterConfig, ConfigError> {
        let mut config: MasterConfig = parse_toml(text, path)?;
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
        self.auth.source().validate(self.auth.insecure)?;
        self.host.validate("host.")
    }
}

impl ProxyConfig {
    /// Reads and validates a proxy's config file.
    pub fn load(path: &Path) -> Result<ProxyConfig, ConfigError> {
        ProxyConfig::parse(&read_toml(path)?, path)
    }

    /// Parses and validates a proxy's config; `path` is only named in errors.
    pub fn parse(text: &str, path: &Path) -> Result<ProxyConfig, ConfigError> {
        let config: ProxyConfig = parse_toml(text, path)?;
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
            for source in cluster.sources(index) {
                source.validate(cluster.insecure)?;
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
data_dir = "data/vigil-2"
masters = [
  { id = 0, address = "10.0.0.1:7000" },
  { id = 1, address = "10.0.0.2:7000" },
  { id = 2, address = "10.0.0.3:7000" },
]
[host]
tick_interval_ms = 20
[protocol]
eviction_threshold = 4
[auth]
cluster_secret_env = "VIGIL_TEST_SECRET"
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

        // A peer's frames must be allowed at least what a client's are, and fit the prefix.
        for peer_frame_bytes_max in ["1048576", "8589934592"] {
            let text = MASTER.replace(
                "tick_interval_ms = 20",
                &format!("tick_interval_ms = 20\npeer_frame_bytes_max = {peer_frame_bytes_max}"),
            );
            let mut config: MasterConfig = toml::from_str(&text).unwrap();
            config.protocol.masters = 3;
            let message = config.validate().unwrap_err().to_string();
            assert!(
                message.starts_with("host.peer_frame_bytes_max:"),
                "{message}"
            );
        }
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
insecure = true
"#;
        let config: ProxyConfig = toml::from_str(text).unwrap();
        let message = config.validate().unwrap_err().to_string();
        assert!(message.starts_with("clusters[0].masters[1]:"), "{message}");
    }

    #[test]
    fn a_missing_or_doubled_secret_is_refused_before_anything_is_read() {
        let text = MASTER.replace("cluster_secret_env = \"VIGIL_TEST_SECRET\"", "");
        let mut config: MasterConfig = toml::from_str(&text).unwrap();
        config.protocol.masters = 3;
        let message = config.validate().unwrap_err().to_string();
        assert!(
            message.starts_with("auth.cluster_secret_file: missing"),
            "{message}"
        );
        assert!(message.contains("insecure = true"), "{message}");

        let text = MASTER.replace("[auth]", "[auth]\ninsecure = true");
        let mut config: MasterConfig = toml::from_str(&text).unwrap();
        config.protocol.masters = 3;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.starts_with("auth.insecure:"), "{message}");

        let text = MASTER.replace("[auth]", "[auth]\ncluster_secret_file = \"/s\"");
        let mut config: MasterConfig = toml::from_str(&text).unwrap();
        config.protocol.masters = 3;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("not both"), "{message}");

        let proxy = r#"
listen = "127.0.0.1:7400"
[[clusters]]
name = "prod"
masters = ["10.0.0.1:7000"]
cluster_secret_file = "/etc/vigil/prod.secret"
"#;
        let config: ProxyConfig = toml::from_str(proxy).unwrap();
        let message = config.validate().unwrap_err().to_string();
        assert!(
            message.starts_with("clusters[0].client_token_file: missing"),
            "{message}"
        );
    }

    #[test]
    fn secrets_are_read_from_files_and_the_environment() {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("secret");
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let auth = MasterAuth {
            cluster_secret_file: Some(path.clone()),
            ..MasterAuth::default()
        };
        let message = auth.authentication().unwrap_err().to_string();
        assert!(message.contains("chmod 600"), "{message}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            auth.authentication().unwrap(),
            Authentication::ClusterSecret(_)
        ));
        let auth = MasterAuth {
            cluster_secret_env: Some("VIGIL_CONFIG_TEST_SECRET_UNSET".into()),
            ..MasterAuth::default()
        };
        let message = auth.authentication().unwrap_err().to_string();
        assert!(
            message.contains("VIGIL_CONFIG_TEST_SECRET_UNSET is not set"),
            "{message}"
        );
    }
}

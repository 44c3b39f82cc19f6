//! What a master needs to run: its cluster, its id and its peers, its data directory, the
//! protocol limits and the host's timing, from a config file or from the in-process cluster.

use std::path::PathBuf;

use vigil_core::NodeId;

use crate::auth::Authentication;
use crate::config::{ConfigError, HostSettings, MasterConfig};

/// What a master needs to run, from its config file or from the in-process cluster.
#[derive(Clone, Debug)]
pub struct MasterSettings {
    /// Cluster name checked in every handshake.
    pub cluster: String,
    /// This master's id.
    pub node_id: NodeId,
    /// Addresses of all masters by id (this one's is unused).
    pub masters: Vec<String>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Protocol limits.
    pub protocol: vigil_core::Config,
    /// Time and transport settings.
    pub host: HostSettings,
    /// Where to write trace events (NDJSON) for conformance; none: tracing off.
    pub trace_file: Option<PathBuf>,
    /// The cluster secret masters and proxies must prove (`auth.rs`).
    pub authentication: Authentication,
}

impl MasterSettings {
    /// The settings of a config file; reads the cluster secret.
    pub fn from_config(config: &MasterConfig) -> Result<MasterSettings, ConfigError> {
        Ok(MasterSettings {
            cluster: config.cluster.clone(),
            node_id: config.node_id,
            masters: config.masters.iter().map(|m| m.address.clone()).collect(),
            data_dir: config.data_dir.clone(),
            protocol: config.protocol.clone(),
            host: config.host.clone(),
            trace_file: config.trace_file.clone(),
            authentication: config.auth.authentication()?,
        })
    }

    pub(super) fn link_settings(&self) -> crate::transport::LinkSettings {
        crate::transport::LinkSettings {
            authentication: self.authentication.clone(),
            ..self.host.link_settings()
        }
    }
}

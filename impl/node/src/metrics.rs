//! Metric names and the Prometheus exporter.
//!
//! The incident was found from alerts (a follower leaving the quorum) and explained by memory
//! growth nobody was measuring (pending requests on an error path). Every counter an operator
//! needs to see either of those is named here once, so the code that records it and
//! `docs/operations.md` that explains it cannot drift apart.

use std::net::SocketAddr;

use metrics_exporter_prometheus::PrometheusBuilder;

/// A master became leader (counted by the new leader).
pub const LEADER_CHANGES: &str = "vigil_leader_changes_total";
/// A leader evicted a follower after `eviction_threshold` missed heartbeats.
pub const EVICTIONS: &str = "vigil_evictions_total";
/// A leader readmitted a follower after catch-up.
pub const REJOINS: &str = "vigil_rejoins_total";
/// A heartbeat could not be queued to a peer (queue full or link down).
pub const HEARTBEAT_SEND_FAILURES: &str = "vigil_heartbeat_send_failures_total";
/// Any message dropped because a peer's bounded send queue was full or its link down.
pub const PEER_SEND_DROPS: &str = "vigil_peer_send_drops_total";
/// Proposals a master received from proxies.
pub const PROPOSALS: &str = "vigil_proposals_total";
/// Seconds from a proposal arriving at a master to its reply leaving.
pub const COMMIT_LATENCY_SECONDS: &str = "vigil_commit_latency_seconds";
/// Seconds one fsync (log append, metadata or snapshot) took.
pub const FSYNC_SECONDS: &str = "vigil_fsync_seconds";
/// Current role of a master: 0 follower, 1 pre-candidate, 2 candidate, 3 leader.
pub const MASTER_ROLE: &str = "vigil_master_role";
/// Master's commit index.
pub const COMMIT_INDEX: &str = "vigil_commit_index";
/// Proxy ledger: requests accepted.
pub const PROXY_ACCEPTED: &str = "vigil_proxy_accepted_total";
/// Proxy ledger: requests completed with a result.
pub const PROXY_COMPLETED_OK: &str = "vigil_proxy_completed_ok_total";
/// Proxy ledger: requests completed with an error (label `error`).
pub const PROXY_COMPLETED_ERR: &str = "vigil_proxy_completed_err_total";
/// Proxy ledger: requests accepted and not completed.
pub const PROXY_IN_FLIGHT: &str = "vigil_proxy_in_flight";
/// Proxy ledger: replies from masters that arrived after their request completed.
pub const PROXY_LATE_REPLIES: &str = "vigil_proxy_late_replies_total";
/// Connections accepted by a server (label `server`: master or proxy).
pub const CONNECTIONS_ACCEPTED: &str = "vigil_connections_accepted_total";
/// Connections currently open on a server.
pub const CONNECTIONS_OPEN: &str = "vigil_connections_open";
/// Frames that could not be read or decoded (label `reason`); the connection was closed.
pub const BAD_FRAMES: &str = "vigil_bad_frames_total";
/// Handshakes refused (label `reason`: cluster, version, role); the connection was closed.
pub const HANDSHAKE_REJECTIONS: &str = "vigil_handshake_rejections_total";
/// Outbound connection attempts to a peer that failed (reconnect with backoff follows).
pub const RECONNECTS: &str = "vigil_reconnects_total";

/// Errors starting the exporter.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The Prometheus exporter could not be installed (already installed, or bind failed).
    #[error("metrics exporter on {address}: {reason}")]
    Install {
        /// The HTTP address asked for.
        address: SocketAddr,
        /// Why it failed.
        reason: String,
    },
}

/// Installs the global recorder and serves `/metrics` over HTTP on `address`.
/// Must be called from inside a tokio runtime. One per process.
pub fn install_exporter(address: SocketAddr) -> Result<(), MetricsError> {
    PrometheusBuilder::new()
        .with_http_listener(address)
        .install()
        .map_err(|error| MetricsError::Install {
            address,
            reason: error.to_string(),
        })
}

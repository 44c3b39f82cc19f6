//! Metric names and the Prometheus recorder.
//!
//! The incident was found from alerts (a follower leaving the quorum) and explained by memory
//! growth nobody was measuring (pending requests on an error path). Every counter an operator
//! needs to see either of those is named here once, so the code that records it and
//! `docs/operations.md` that explains it cannot drift apart.

use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

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
/// Bytes of the last snapshot a master wrote: the store's size on disk. A snapshot must fit
/// one frame to a peer (`peer_frame_bytes_max`, 1 GiB by default) to reach a follower that
/// is behind it; alert well below that.
pub const SNAPSHOT_BYTES: &str = "vigil_snapshot_bytes";
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
/// Handshakes refused (label `reason`: cluster, version, role, auth, …); the connection was
/// closed. `reason="auth"`: a wrong or missing cluster secret (`auth.rs`).
pub const HANDSHAKE_REJECTIONS: &str = "vigil_handshake_rejections_total";
/// Client requests and status queries refused for a missing or wrong token (label `cluster`);
/// each request was still answered once (`PermissionDenied`).
pub const PROXY_PERMISSION_DENIED: &str = "vigil_proxy_permission_denied_total";
/// Requests refused `Overloaded` (label `bound`: `reads_waiting_max` or `proposals_queued_max`
/// at a leader, with label `node`; `in_flight_max` at a proxy): each refusal names the bound
/// that was full, so an operator knows which limit to look at (`docs/operations.md` §6).
pub const OVERLOADED: &str = "vigil_overloaded_total";
/// Watch ledger (`docs/protocol.md` §17.4): watches clients asked for.
pub const PROXY_WATCHES_OPENED: &str = "vigil_proxy_watches_opened_total";
/// Watch ledger: watches ended, each exactly once (`opened == ended + open`).
pub const PROXY_WATCHES_ENDED: &str = "vigil_proxy_watches_ended_total";
/// Watch ledger: watches held now.
pub const PROXY_WATCHES_OPEN: &str = "vigil_proxy_watches_open";
/// Watch ledger: watches dropped without an ending (a bug; must stay 0).
pub const PROXY_WATCHES_DROPPED_UNENDED: &str = "vigil_proxy_watches_dropped_unended_total";
/// Watches ended, by `outcome` (`cancelled`, `compacted`, `client_gone`, `unknown_cluster`,
/// `overflow`, `too_many_watches`, `permission_denied`, `dropped`): the refusals and the slow
/// watchers an operator looks for.
pub const PROXY_WATCH_ENDINGS: &str = "vigil_proxy_watch_endings_total";
/// Revisioned requests refused `InvalidRequest` (a transaction over `txn_operations_max`, or
/// putting one key twice), never forwarded.
pub const PROXY_INVALID_REQUESTS: &str = "vigil_proxy_invalid_requests_total";
/// Proxies subscribed to a master's committed stream (label `node`).
pub const MASTER_SUBSCRIPTIONS: &str = "vigil_master_subscriptions";
/// Connections to a proxy a master closed because a subscription message could not be queued
/// (label `node`): the proxy resumes its watches elsewhere.
pub const MASTER_SUBSCRIPTION_RESETS: &str = "vigil_master_subscription_resets_total";
/// Outbound connection attempts to a peer that failed (reconnect with backoff follows).
pub const RECONNECTS: &str = "vigil_reconnects_total";

/// How often histogram samples are folded into the summaries when nobody scrapes (the
/// recorder buffers them until then; the exporter's own listener did this for us).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Errors installing the recorder.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The Prometheus recorder could not be installed (one is already installed).
    #[error("metrics recorder: {reason}")]
    Install {
        /// Why it failed.
        reason: String,
    },
}

/// Installs the global Prometheus recorder and returns the handle that renders it (served on
/// `/metrics` by [`crate::status::serve`]). Must be called from inside a tokio runtime: it
/// spawns the recorder's upkeep. One per process.
pub fn install_recorder() -> Result<PrometheusHandle, MetricsError> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|error| MetricsError::Install {
            reason: error.to_string(),
        })?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            interval.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

//! vigil's tokio host: runs `vigil-core` state machines over TCP with durable storage,
//! the proxy server, metrics, and the client library used by the CLI, the benchmark and tests.
//!
//! Layers, bottom up: `storage` (checksummed log, atomic files) and `durable` (a master's
//! durable state on it); `codec` (frames, handshake), `auth` (cluster secret, client tokens)
//! and `transport` (accept loop, links); `wire` (what travels after the handshake); `master`
//! and `proxy` (the tasks that own the core's state machines); `client`; `cluster` (N masters
//! and a proxy in one process); `config`, `metrics` and `status` (the HTTP endpoint for
//! `/metrics` and `/status`); `fuzzing` (entry points of the fuzz targets and corpus replay);
//! `kv_text` (the revisioned API as the CLI's text); `tick_clock` (ticks due on the host's
//! clock, so a pause is told from a late tick);
//! `platform`, the seam (network, file system) that lets conformance run all of it under a
//! deterministic simulation.
//!
//! The service and nothing else: the benchmark (`vigil-bench`), the kit that starts real
//! processes for it and for the nemesis (`vigil-testkit`) and the checker (`vigil-conformance`)
//! depend on this crate; it depends on none of them, nor on the model.

pub mod auth;
pub mod client;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod durable;
pub mod fuzzing;
pub mod kv_text;
pub mod master;
pub mod metrics;
pub mod platform;
pub mod proxy;
pub mod status;
pub mod storage;
pub mod tick_clock;
pub mod trace_sink;
pub mod transport;
pub mod wire;

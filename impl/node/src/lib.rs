//! vigil's tokio host: runs `vigil-core` state machines over TCP with durable storage,
//! the proxy server, metrics, and the client library used by the CLI, benchmarks and tests.

pub mod codec;
pub mod metrics;
pub mod storage;
pub mod transport;

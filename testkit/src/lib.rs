//! What the benchmark (`vigil-bench`) and the nemesis (`vigil-conform nemesis`) share to run vigil
//! as users run it: real `vigil master` and `vigil proxy` processes on 127.0.0.1, one per
//! config file. Written once so that both harnesses start, watch and stop their processes the
//! same way.
//!
//! - [`child_process`]: children the kernel kills when the harness dies (the parent-death
//!   signal, set from one spawner thread that lives as long as the process).
//! - [`children`]: the guard over a harness's children: start, signal, kill, restart, read
//!   RSS, stop, and kill whatever is left when it drops.
//! - [`resident`]: a process's resident set size from `/proc`.
//! - [`ports`]: free loopback ports for the children to listen on.
//! - [`layout`]: a cluster's directories and the TOML configs of its masters and proxy.
//! - [`status`]: `GET /status` of a master or the proxy; [`leader`]: which master leads.
//! - [`vigil_binary`]: the `vigil` executable to start, built by cargo when it is stale.
//!
//! Dependencies point one way: the service (`vigil`) never depends on this crate.

pub mod child_process;
pub mod children;
pub mod layout;
pub mod leader;
pub mod ports;
pub mod resident;
pub mod status;
pub mod vigil_binary;

pub use children::{send_signal, Children};
pub use layout::{Endpoints, Layout, Security};
pub use nix::sys::signal::Signal;

/// What can go wrong while starting, watching or stopping child processes.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A file, socket or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A child could not be started, found or signalled.
    #[error("{0}")]
    Child(String),
    /// An HTTP exchange with a child failed or its answer did not parse.
    #[error("{0}")]
    Http(String),
    /// A config could not be written.
    #[error("{0}")]
    Config(String),
    /// The `vigil` executable could not be located or built.
    #[error("{0}")]
    Build(String),
}

impl TestkitError {
    /// A closure mapping an I/O error while doing `what`.
    pub fn io(what: impl Into<String>) -> impl Fn(std::io::Error) -> TestkitError {
        let what = what.into();
        move |source| TestkitError::Io {
            what: what.clone(),
            source,
        }
    }
}

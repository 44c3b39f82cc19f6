//! The planted bugs of this process's runs (`vigil-conform run --mutation NAME`): the binary sets
//! them once, before any run, and every place that builds a core configuration
//! ([`crate::sim::protocol`], which the turmoil host shares, and [`crate::tcp::protocol`]) puts
//! them into it, so the core simulation, the tokio host under turmoil and the TCP runs all carry
//! them, and so does every rerun a failure's shrinking makes. The model replays without them: a
//! planted bug must show as a divergence (`tests/mutations.rs`).
//!
//! One process-wide value rather than a parameter of every runner: a process runs with one set
//! from start to end, and the runners' configuration functions stay the one place that builds a
//! configuration. Empty unless set; a build without vigil-core's cargo feature `mutations` cannot
//! set anything but the empty set ([`vigil_core::Mutations::planted`]).

use std::sync::OnceLock;

use vigil_core::Mutations;

static PLANTED: OnceLock<Mutations> = OnceLock::new();

/// The planted bugs were already set (to `current`); they are set once per process.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("planted bugs are set once per process, and already are ({current:?})")]
pub struct AlreadyPlanted {
    /// The set in force.
    pub current: Mutations,
}

/// Sets this process's planted bugs; call it before the first run. Only the binary does: tests
/// run it as a child process, so that no test plants bugs in another that shares its process.
pub fn plant(mutations: Mutations) -> Result<(), AlreadyPlanted> {
    PLANTED
        .set(mutations)
        .map_err(|_| AlreadyPlanted { current: planted() })
}

/// This process's planted bugs (empty unless [`plant`] set some).
pub fn planted() -> Mutations {
    PLANTED.get().copied().unwrap_or_default()
}

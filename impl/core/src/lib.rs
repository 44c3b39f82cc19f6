//! vigil's sans-IO protocol core: a Multi-Paxos master and the proxy as pure state machines.
//!
//! No tokio, no clock, no randomness, no I/O: the host drives it with `tick`, `step` and
//! `propose`, and drains a `Ready` batch. See `docs/architecture.md`.

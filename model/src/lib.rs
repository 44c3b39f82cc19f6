//! The stateright model of vigil's protocol: Multi-Paxos masters with heartbeats, evictions,
//! rejoin, stop-the-world pauses and crashes, plus the proxy and its request ledger.
//!
//! It is the reference the implementation is checked against (see `docs/protocol.md`); it
//! shares no code with `vigil-core`, so that conformance compares two independent writings of
//! one protocol.

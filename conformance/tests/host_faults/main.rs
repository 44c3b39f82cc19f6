//! The real tokio host under faults injected through its platform seam
//! (`vigil_conformance::seams`): an in-process cluster on 127.0.0.1 whose masters' event
//! loops are paused, links cut and disks stalled, failed or filled, and what the service must
//! do about each (`docs/protocol.md` §5, §7, §2.1).

mod common;
mod compaction;
mod disk;
mod links;
mod pause;

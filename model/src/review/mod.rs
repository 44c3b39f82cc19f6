//! A design review of a protocol change as data (`vigil-model summary` and `review`,
//! `docs/review.md`): each version summarises itself — every preset checked with the abstract
//! states it reaches, every seeded bug's targeted preset — and two summaries compare into a
//! review with a verdict. The binary builds the versions; this module only compares.

pub mod abstraction;
pub mod compare;
pub mod render;
pub mod summary;

pub use abstraction::{abstract_state, Observer};
pub use compare::Review;
pub use summary::{paths_to, summarize, BugSummary, PresetSummary, Summary};

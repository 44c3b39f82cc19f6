//! Conformance between vigil's implementation and its model: run the real implementation,
//! record its traces, replay them against the model, report the first divergence.
//!
//! Pipeline (`docs/trace.md`): [`trace`] reads per-node NDJSON files, [`merge`] puts them in one
//! causal order, [`mapping`] (the only module that knows both vocabularies) turns events into
//! model actions and model states into the implementation's post-states, [`replay`] steps the
//! model and compares, [`check`] runs those steps on a run's traces, [`report`] prints a
//! divergence for a CI log and [`evidence`] saves its model path and [`diagram`]. [`sim`] (the
//! core), [`turmoil_host`] (the tokio host under turmoil), [`tcp`] (the host on loopback) and
//! [`faults`] produce runs, with the bugs [`planted`] for the mutation matrix, if any, and
//! inject the faults through the host's platform seam ([`seams`]); the host runs' clients of
//! the revisioned API are [`revisioned_clients`], whose mover draws its operations from
//! [`revisioned_operations`] as the simulation's does;
//! [`coverage`] says what they exercised. [`run`] is one run of a runner and its check,
//! [`part`] the one loop over a runner's runs, [`verify`] the main job's parts. [`nemesis`]
//! runs real `vigil` processes under faults and checks the clients' history.

pub mod check;
pub mod coverage;
pub mod diagram;
pub mod evidence;
pub mod faults;
pub mod headers;
pub mod linearizability;
pub mod mapping;
pub mod merge;
pub mod nemesis;
pub mod part;
pub mod planted;
pub mod replay;
pub mod report;
pub mod revisioned_clients;
pub mod revisioned_operations;
pub mod run;
pub mod seams;
pub mod sim;
pub mod tcp;
pub mod trace;
pub mod turmoil_host;
pub mod verify;

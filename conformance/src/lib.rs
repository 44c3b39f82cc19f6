//! Conformance between vigil's implementation and its model: run the real implementation,
//! record its traces, replay them against the stateright model, report the first divergence.

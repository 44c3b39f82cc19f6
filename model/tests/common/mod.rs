//! Helpers shared by the model's scenario tests (`eviction.rs`, `incident.rs`): walking the
//! model one named action at a time.

use vigil_model::{Action, Config, State};

/// The state after `action`, which must be enabled (else the panic lists what is).
pub fn step(config: &Config, state: State, action: Action) -> State {
    match config.apply(&state, &action) {
        Some(next) => next,
        None => panic!(
            "not enabled: {action}\nenabled: {:#?}",
            config.enabled_actions(&state)
        ),
    }
}

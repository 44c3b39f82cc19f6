//! The properties of leases (`docs/protocol.md` §20.5) and the witnesses that show the lease
//! presets reach what they are about. Each is judged on the lease ghost (`crate::lease_ghost`),
//! set when a lease command is first chosen and when a holder hears its answer, except the
//! ledger, which also counts the leases the chosen history leaves. Without lease operations
//! every one holds at once and no witness is reached.

use crate::config::Config;
use crate::kv::KeyValueStore;
use crate::state::State;
use stateright::Property;

/// The safety properties, then the witnesses.
pub fn all() -> Vec<Property<Config>> {
    vec![
        Property::always("lease_not_expired_early", |_, state: &State| {
            !state.lease.ghost.expired_early
        }),
        Property::always("ephemeral_keys_end_with_lease", |_, state: &State| {
            !state.lease.ghost.ephemeral_outlived
        }),
        Property::always("lease_ledger", lease_ledger),
        Property::sometimes("abandoned_lease_expired", |_, state: &State| {
            state.lease.ghost.abandoned_expired
        }),
        Property::sometimes("lease_expired_across_leader_change", |_, state: &State| {
            state.lease.ghost.expired_across_leader_change
        }),
        Property::sometimes("deposed_expiry_without_effect", |_, state: &State| {
            state.lease.ghost.deposed_expiry_without_effect
        }),
        Property::sometimes("lease_kept_alive_without_log_entry", |_, state: &State| {
            state.lease.ghost.kept_alive_without_log_entry
        }),
    ]
}

/// Every lease ends exactly once: `granted == ended + live`, no end without a live lease, and
/// `live` is the number of leases the chosen history leaves (applied in slot order).
fn lease_ledger(config: &Config, state: &State) -> bool {
    if !config.has_leases() {
        return true;
    }
    let ghost = &state.lease.ghost;
    if ghost.ended_unbalanced || ghost.granted != ghost.ended + ghost.live {
        return false;
    }
    let mut store = KeyValueStore::for_master(config);
    for command in state.ghost.chosen.values() {
        store.apply_command(command);
    }
    store.leases.leases.len() as u32 == ghost.live
}

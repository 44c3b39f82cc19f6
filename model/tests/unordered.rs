//! The unordered-network option: any message of a link may be delivered next. The incident's
//! preset still holds every property and reaches its witnesses, so per-link FIFO is not what
//! makes the protocol safe (it only makes the search smaller and TCP traces easier to replay).

use vigil_model::check::{run_preset, CheckOptions};
use vigil_model::presets;
use vigil_model::Delivery;

#[test]
fn ci_pause_holds_on_an_unordered_network() {
    let mut preset = presets::ci_pause();
    preset.config.delivery = Delivery::Unordered;
    let report = run_preset(&preset, &CheckOptions::default());
    assert!(report.passed() && report.complete, "{report}");
    assert_eq!(report.unique_states, 253_810, "{report}");
    eprintln!("{report}");
}

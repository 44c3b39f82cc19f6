//! Regression seeds (`conformance/regressions/*.json`): each is a shrunk fault plan that once
//! made a simulated run diverge, saved by `vigil-conform run` when it shrank the failure
//! (`docs/trace.md` §6). Every file is replayed here on every test run and must pass.

use vigil_conformance::check::check_traces;
use vigil_conformance::faults;
use vigil_conformance::{sim, trace};

#[test]
fn every_saved_regression_seed_replays_without_divergence() {
    let regressions = faults::load_regressions(&faults::regressions_directory())
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        !regressions.is_empty(),
        "no regression seed in {}",
        faults::regressions_directory().display()
    );
    for (path, regression) in regressions {
        let run = sim::run(regression.seed, regression.masters, &regression.plan);
        if let Err(failure) = check_traces(&run.traces, trace::EVENTS_FLOOR_DEFAULT) {
            panic!(
                "{} (found as: {}) fails again:\n{failure}",
                path.display(),
                regression.found
            );
        }
    }
}

//! `verify`, the project's main job: the model check of a preset, then the implementation under
//! every fault on each of the three runners, each a part of the summary table. What it runs by
//! default is the CI job; its options only change how much.

use std::time::Instant;

use crate::faults::{FaultKind, Runner};
use crate::part::{PartOutcome, PartPlan, PartResult};

/// The model-check preset `verify` checks.
pub const PRESET_DEFAULT: &str = "ci";
/// Seeds of the core simulation (from seed 1).
pub const SIM_SEEDS_DEFAULT: u64 = 8;
/// Seeds of the tokio host under turmoil (from seed 1; well under a second each).
pub const TURMOIL_SEEDS_DEFAULT: u64 = 8;
/// The fault kinds of the real-TCP runs, one kind per run in turn (`docs/trace.md` §7).
pub const TCP_FAULTS_DEFAULT: &str = "all";
/// The first seed of the simulations' runs.
pub const FIRST_SEED: u64 = 1;
/// Masters in a run.
pub const MASTERS: u64 = 5;

/// What `verify` runs.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The model-check preset (`ci`, or one of its members for a quick look).
    pub preset: String,
    /// Seeds of the core simulation.
    pub sim_seeds: u64,
    /// Seeds of the tokio host under turmoil.
    pub turmoil_seeds: u64,
    /// Real-TCP runs; `None`: one per fault kind of `tcp_faults` that TCP injects
    /// ([`tcp_runs_for`]).
    pub tcp_runs: Option<u64>,
    /// The real-TCP runs' fault kinds, one per run in turn.
    pub tcp_faults: Vec<FaultKind>,
}

/// Real-TCP runs for `kinds`: one per kind the TCP runner injects (`FaultKind::runs_on`), so
/// every kind gets a short run of its own; one run without faults if it injects none of them.
pub fn tcp_runs_for(kinds: &[FaultKind]) -> u64 {
    let injected = kinds
        .iter()
        .filter(|kind| kind.runs_on(Runner::Tcp))
        .count() as u64;
    injected.max(1)
}

/// The runners' parts of `verify`, in order: every fault kind in the core simulation and under
/// turmoil, one kind per run on TCP.
pub fn runner_parts(options: &VerifyOptions) -> Vec<PartPlan> {
    let tcp_runs = options
        .tcp_runs
        .unwrap_or_else(|| tcp_runs_for(&options.tcp_faults));
    vec![
        PartPlan::seeds(
            Runner::CoreSimulation,
            MASTERS,
            FIRST_SEED,
            options.sim_seeds,
            &FaultKind::ALL,
        ),
        PartPlan::seeds(
            Runner::Turmoil,
            MASTERS,
            FIRST_SEED,
            options.turmoil_seeds,
            &FaultKind::ALL,
        ),
        PartPlan::rotating(Runner::Tcp, MASTERS, tcp_runs, &options.tcp_faults),
    ]
}

/// The model-check part: exhaustive on every preset `preset` names. Also the suite's report
/// when it failed, for the log.
pub fn model_check(preset: &str) -> (PartResult, Option<String>) {
    let name = format!("model check (preset {preset})");
    let started = Instant::now();
    let options = vigil_model::check::CheckOptions::default();
    match vigil_model::check::run_named(preset, &options) {
        Ok(suite) => {
            let passed = suite.passed();
            let part = PartResult {
                name,
                outcome: if passed {
                    PartOutcome::Passed
                } else {
                    PartOutcome::Failed
                },
                detail: format!(
                    "{} presets, {} unique states, {:.1} s",
                    suite.reports.len(),
                    suite.unique_states(),
                    started.elapsed().as_secs_f64()
                ),
            };
            (part, (!passed).then(|| suite.to_string()))
        }
        Err(error) => {
            let part = PartResult {
                name,
                outcome: PartOutcome::Failed,
                detail: error.to_string(),
            };
            (part, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tcp_runs_are_one_per_fault_kind_tcp_injects() {
        let injected: Vec<FaultKind> = FaultKind::ALL
            .into_iter()
            .filter(|kind| kind.runs_on(Runner::Tcp))
            .collect();
        assert_eq!(tcp_runs_for(&FaultKind::ALL), injected.len() as u64);
        let options = VerifyOptions {
            preset: PRESET_DEFAULT.to_string(),
            sim_seeds: SIM_SEEDS_DEFAULT,
            turmoil_seeds: TURMOIL_SEEDS_DEFAULT,
            tcp_runs: None,
            tcp_faults: FaultKind::ALL.to_vec(),
        };
        let parts = runner_parts(&options);
        let tcp = parts
            .iter()
            .find(|part| part.runner == Runner::Tcp)
            .expect("a TCP part");
        let kinds: Vec<Vec<FaultKind>> = tcp.runs.iter().map(|run| run.kinds.clone()).collect();
        let expected: Vec<Vec<FaultKind>> = injected.iter().map(|kind| vec![*kind]).collect();
        assert_eq!(kinds, expected, "each kind TCP injects, once, in turn");
    }

    #[test]
    fn without_a_kind_tcp_injects_verify_makes_one_run_without_faults() {
        assert_eq!(tcp_runs_for(&[]), 1);
        assert_eq!(tcp_runs_for(&[FaultKind::StaleAck]), 1);
        let plan = PartPlan::rotating(Runner::Tcp, MASTERS, 1, &[FaultKind::StaleAck]);
        assert_eq!(plan.runs.len(), 1);
        assert!(plan.runs[0].kinds.is_empty());
    }

    #[test]
    fn the_simulations_run_every_kind_with_the_seeds_asked_for() {
        let options = VerifyOptions {
            preset: PRESET_DEFAULT.to_string(),
            sim_seeds: 3,
            turmoil_seeds: 2,
            tcp_runs: Some(0),
            tcp_faults: Vec::new(),
        };
        let parts = runner_parts(&options);
        let seeds = |runner| {
            let part = parts
                .iter()
                .find(|part| part.runner == runner)
                .expect("a part");
            assert!(part.runs.iter().all(|run| run.kinds == FaultKind::ALL));
            part.runs.iter().map(|run| run.seed).collect::<Vec<u64>>()
        };
        assert_eq!(seeds(Runner::CoreSimulation), [1, 2, 3]);
        assert_eq!(seeds(Runner::Turmoil), [1, 2]);
        assert!(seeds(Runner::Tcp).is_empty());
    }
}

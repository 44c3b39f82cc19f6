//! Compaction (`vigil_model::compaction`, used by conformance's replay) changes nothing a later
//! step can see: weighted random walks on five masters with every fault unbounded step a plain
//! state and a compacted one with the same actions; after every step both enable the same
//! actions, agree on every safety property but `linearizable` (its history is archived), and
//! the compacted state with the archive put back equals the plain one. The walks must cut the
//! log and put it back after crashes, or they would prove nothing.

use vigil_model::chooser::weight;
use vigil_model::compaction::{Archive, Minimums};
use vigil_model::presets::{self, CLUSTER, WRONG_CLUSTER};
use vigil_model::types::Operation;
use vigil_model::{Action, ClientScript, Config, State};

/// Steps per walk.
const STEPS: usize = 1_500;

/// SplitMix64: a fixed generator, so a failing seed replays.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }
}

/// The `seed` preset's five masters with long scripts on two keys and a wrong-cluster client.
fn config() -> Config {
    let mut config = presets::seed().config;
    let script = |client: u8| -> Vec<Operation> {
        (0..40u8)
            .map(|index| {
                let key = (index + client) % 2;
                match index % 4 {
                    0 => Operation::Put { key, value: index },
                    1 => Operation::Get { key },
                    2 => Operation::Cas {
                        key,
                        expected_version: u32::from(index / 4),
                        value: index,
                    },
                    _ => Operation::Delete { key },
                }
            })
            .collect()
    };
    config.clients = vec![
        ClientScript {
            cluster: CLUSTER,
            operations: script(0),
        },
        ClientScript {
            cluster: CLUSTER,
            operations: script(1),
        },
        ClientScript {
            cluster: WRONG_CLUSTER,
            operations: script(2),
        },
    ];
    config
}

fn choose(random: &mut Random, state: &State, actions: &[Action]) -> Action {
    let weights: Vec<u64> = actions
        .iter()
        .map(|action| weight(state, action).max(1))
        .collect();
    let mut pick = random.next() % weights.iter().sum::<u64>();
    for (action, weight) in actions.iter().zip(weights) {
        if pick < weight {
            return action.clone();
        }
        pick -= weight;
    }
    unreachable!("the pick is below the sum of the weights")
}

fn properties_agree(config: &Config, plain: &State, compacted: &State, step: usize) {
    for property in vigil_model::properties::all() {
        if property.expectation != stateright::Expectation::Always
            || property.name == "linearizable"
        {
            continue;
        }
        assert_eq!(
            (property.condition)(config, plain),
            (property.condition)(config, compacted),
            "`{}` differs at step {step}",
            property.name
        );
    }
}

/// What a walk saw: cuts of the log and puts back.
#[derive(Default)]
struct Seen {
    cuts: usize,
    restores: usize,
}

fn walk(seed: u64, minimums: Minimums) -> Seen {
    let config = config();
    let mut random = Random(seed);
    let mut plain = State::initial(&config);
    let mut compacted = plain.clone();
    let mut archive = Archive::with_minimums(minimums);
    let mut seen = Seen::default();
    for step in 0..STEPS {
        let actions = config.enabled_actions(&plain);
        assert_eq!(
            actions,
            config.enabled_actions(&compacted),
            "enabled actions differ at step {step}"
        );
        if actions.is_empty() {
            break;
        }
        let action = choose(&mut random, &plain, &actions);
        plain = config.apply(&plain, &action).expect("enabled");
        compacted = config.apply(&compacted, &action).expect("enabled");
        let before = compacted.compacted.through;
        archive.compact(&config, &mut compacted);
        let after = compacted.compacted.through;
        seen.cuts += usize::from(after > before);
        seen.restores += usize::from(after < before);
        properties_agree(&config, &plain, &compacted, step);
        assert_eq!(
            archive.restored(&compacted),
            plain,
            "seed {seed}: the restored state differs at step {step} ({action})"
        );
    }
    archive.restore(&mut compacted);
    assert_eq!(compacted, plain, "seed {seed}: restore at the end");
    seen
}

#[test]
fn compaction_changes_nothing_a_later_step_sees() {
    let eager = Minimums {
        slots: 1,
        history_events: 1,
        replies: 1,
    };
    let mut total = Seen::default();
    for seed in 1..=12 {
        let seen = walk(seed, eager);
        total.cuts += seen.cuts;
        total.restores += seen.restores;
    }
    assert!(
        total.cuts >= 12,
        "the walks cut the log {} times",
        total.cuts
    );
    assert!(
        total.restores >= 1,
        "no walk put the log back (a crash below the cut)"
    );
}

/// At the default minimums the walks archive history and replies (their logs stay short).
#[test]
fn default_minimums_change_nothing_either() {
    for seed in 13..=16 {
        walk(seed, Minimums::default());
    }
}

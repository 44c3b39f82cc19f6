//! Compaction (`vigil_model::compaction`, used by conformance's replay) changes nothing a later
//! step can see: weighted random walks on five masters with every fault unbounded step a plain
//! state and a compacted one with the same actions; after every step both enable the same
//! actions, agree on every safety property but `linearizable` (its history is archived), and
//! the compacted state with the archive put back equals the plain one. The walks must cut the
//! log and put it back after crashes, or they would prove nothing. With revisioned clients
//! (transactions, ranges at older revisions, compactions, watches) the same holds, the two
//! properties that read the whole run judged on the compacted state by the checks a replay
//! keeps along its path.

use vigil_model::chooser::weight;
use vigil_model::compaction::{Archive, Minimums};
use vigil_model::kv_types::{
    Compare, CompareResult, CompareTarget, KeyRange, KvOperation, PutRequest, RangeRequest,
    TxnOperation, TxnRequest, WatchRequest,
};
use vigil_model::presets::{self, CLUSTER, WRONG_CLUSTER};
use vigil_model::revision_properties::{RevisionCheck, WatchCheck};
use vigil_model::types::Operation;
use vigil_model::{Action, ClientScript, Config, KvClientScript, KvStep, State};

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

/// `config()` with two register clients and three revisioned ones: a writer of puts, moves
/// between keys 0 and 1 by `Txn` and compactions; a reader of ranges at the current and an
/// older revision; a watcher of every key from revision 2 and from now, with progress requests.
fn revisioned_config() -> Config {
    let mut config = config();
    config.clients.truncate(2);
    for script in &mut config.clients {
        script.operations.truncate(16);
    }
    let put = |key, value| PutRequest {
        key,
        value,
        prev_kv: value % 2 == 0,
    };
    let moved = |from, to, value| TxnRequest {
        compare: vec![Compare {
            key: from,
            target: CompareTarget::Version(0),
            result: CompareResult::NotEqual,
        }],
        success: vec![TxnOperation::Put(put(to, value))],
        failure: vec![TxnOperation::Range(range(KeyRange::from(0), 0))],
    };
    let writer = (0..30u8)
        .map(|index| match index % 5 {
            0 | 1 => KvOperation::Put(put(index % 2, index)),
            2 => KvOperation::Txn(Box::new(moved(0, 1, index))),
            3 => KvOperation::Txn(Box::new(moved(1, 0, index))),
            _ => KvOperation::Compact {
                revision: u32::from(index),
            },
        })
        .map(KvStep::Operation)
        .collect();
    let reader = (0..20u8)
        .map(|index| {
            let request = RangeRequest {
                revision: u32::from(index % 3) * u32::from(index) / 2,
                ..range(KeyRange::from(0), 1 + index % 2)
            };
            KvStep::Operation(KvOperation::Range(request))
        })
        .collect();
    let watch = |start_revision| {
        KvStep::Watch(WatchRequest {
            range: KeyRange::from(0),
            start_revision,
            prev_kv: true,
            filter: None,
        })
    };
    let watcher = vec![
        watch(2),
        KvStep::Progress { watch: 0 },
        watch(0),
        KvStep::Progress { watch: 2 },
        KvStep::Progress { watch: 0 },
    ];
    config.kv_clients = [writer, reader, watcher]
        .into_iter()
        .map(|steps| KvClientScript {
            cluster: CLUSTER,
            steps,
        })
        .collect();
    config
}

fn range(range: KeyRange, limit: u8) -> RangeRequest {
    RangeRequest {
        range,
        limit,
        revision: 0,
        keys_only: false,
        count_only: false,
    }
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

/// The checks a replay keeps along its path for the properties that read the whole run.
#[derive(Default)]
struct Kept {
    watches: WatchCheck,
    revisions: RevisionCheck,
}

fn properties_agree(
    config: &Config,
    plain: &State,
    compacted: &State,
    kept: &mut Kept,
    step: usize,
) {
    for property in vigil_model::properties::all() {
        if property.expectation != stateright::Expectation::Always
            || property.name == "linearizable"
        {
            continue;
        }
        let on_compacted = match property.name {
            "watch_in_order_exactly_once" => kept.watches.holds(config, compacted),
            "revision_monotone" => kept.revisions.holds(config, compacted),
            _ => (property.condition)(config, compacted),
        };
        assert_eq!(
            (property.condition)(config, plain),
            on_compacted,
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
    /// Revisioned replies and watch events received at the end.
    kv_replies: usize,
    watch_events: usize,
}

fn walk(config: &Config, seed: u64, minimums: Minimums) -> Seen {
    let mut random = Random(seed);
    let mut plain = State::initial(config);
    let mut compacted = plain.clone();
    let mut archive = Archive::with_minimums(minimums);
    let mut kept = Kept::default();
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
        // As in a replay: the properties on the step's state, then compaction.
        properties_agree(config, &plain, &compacted, &mut kept, step);
        archive.compact(config, &mut compacted);
        let after = compacted.compacted.through;
        seen.cuts += usize::from(after > before);
        seen.restores += usize::from(after < before);
        properties_agree(config, &plain, &compacted, &mut kept, step);
        assert_eq!(
            archive.restored(&compacted),
            plain,
            "seed {seed}: the restored state differs at step {step} ({action})"
        );
    }
    archive.restore(&mut compacted);
    assert_eq!(compacted, plain, "seed {seed}: restore at the end");
    for client in &plain.clients {
        seen.kv_replies += client.kv_replies.len();
        let watches = client.watches.values();
        seen.watch_events += watches.map(|record| record.events.len()).sum::<usize>();
    }
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
        let seen = walk(&config(), seed, eager);
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
        walk(&config(), seed, Minimums::default());
    }
}

#[test]
fn compaction_with_revisioned_clients_changes_nothing_a_later_step_sees() {
    let eager = Minimums {
        slots: 1,
        history_events: 1,
        replies: 1,
    };
    let config = revisioned_config();
    let mut total = Seen::default();
    for seed in 101..=112 {
        let seen = walk(&config, seed, eager);
        total.cuts += seen.cuts;
        total.restores += seen.restores;
        total.kv_replies += seen.kv_replies;
        total.watch_events += seen.watch_events;
    }
    assert!(
        total.kv_replies >= 100 && total.watch_events >= 12,
        "the walks got {} revisioned replies and {} watch events",
        total.kv_replies,
        total.watch_events
    );
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

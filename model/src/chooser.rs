//! The simulation's chooser for the `seed` preset: random walks weighted by how often each kind
//! of step happens in a real deployment, instead of stateright's `UniformChooser`.
//!
//! A uniform walk on five masters with every fault unbounded spends its depth on faults and
//! timers: with a dozen pauses, crashes, drops and timers enabled in every state, the long chain
//! of the incident (pause → `eviction_threshold` heartbeats missed → `Evict` → `Resume` →
//! `ElectionTimeout` → `PreVote` refused → `Rejoin` → `CatchUp` → `CatchUpAck` → `Readmit`) is
//! almost always cut by another election, a crash or a resume that comes too early, and
//! `evicted_follower_rejoins` was never reached in 30 s. This chooser only changes which enabled
//! action a walk takes; the model (its actions and properties) is untouched, and every discovery
//! is still re-validated by replay (`check::replay`).
//!
//! - **Weights** (see [`weight`]): messages are delivered and clients send much more often than
//!   timers fire, and timers much more often than faults happen; the heartbeat timer fires more
//!   often than the check-quorum and election timers (its interval is the shortest), and a
//!   forced check-quorum (a resumed leader) or a `Restart` is not delayed.
//! - **Held pauses**: a pause lasts a while, as the incident's GC pause did. `Resume` of a
//!   master is not chosen until the heartbeat timer has fired `eviction_threshold` times since
//!   its `Pause` (enough for its eviction) or [`HOLD_STEPS_MAX`] steps have passed (a paused
//!   leader's own heartbeat timer does not fire).
//! - **Election timers fire after silence**: an `ElectionTimeout` at a master that has not handled
//!   a leader's `Heartbeat`, `Accept`, `Commit` or `CatchUp` for `eviction_threshold` heartbeat
//!   periods (or [`HOLD_STEPS_MAX`] steps) weighs [`ELECTION_TIMEOUT_DUE`], as much as the
//!   heartbeat timer; one at a master that hears its leader weighs 2 (a rare early firing). A
//!   resumed or restarted follower (evicted: no more heartbeats) is due, as in the core, where
//!   its timers fire late on resume.
//! - **A uniform share**: one walk in [`UNIFORM_ONE_IN`] is uniform, so the fault-heavy corners the
//!   uniform walk reaches are still visited.
//!
//! The random generator is SplitMix64, written here: the walks of a seed do not change with the
//! `rand` crate's version.

use crate::config::Config;
use crate::message::{Endpoint, Message};
use crate::model::Action;
use crate::state::State;
use stateright::Chooser;

/// A paused master is resumed at the latest this many steps after its pause.
pub const HOLD_STEPS_MAX: u32 = 60;

/// One walk in this many chooses uniformly.
pub const UNIFORM_ONE_IN: u64 = 4;

/// The weighted chooser (see the module documentation).
#[derive(Clone, Debug)]
pub struct WeightedChooser {
    /// Heartbeat timer firings a pause is held for (the preset's `eviction_threshold`).
    pub hold_heartbeats: u32,
}

impl WeightedChooser {
    /// The chooser for `config`: pauses held for `eviction_threshold` heartbeats.
    pub fn for_config(config: &Config) -> WeightedChooser {
        WeightedChooser {
            hold_heartbeats: u32::from(config.eviction_threshold),
        }
    }
}

/// A moment of a walk: the heartbeat timer firings so far and the step.
#[derive(Clone, Copy, Debug)]
struct Held {
    heartbeats: u32,
    step: u32,
}

/// One walk's state.
#[derive(Clone, Debug)]
pub struct WalkState {
    rng: SplitMix64,
    uniform: bool,
    step: u32,
    /// Per master, the pause being held, if any.
    held: Vec<Option<Held>>,
    /// Per master, when it last handled a message of a leader (heartbeat count and step).
    heard: Vec<Held>,
}

/// The weight of `action` in `state` (0: not chosen while another action has weight).
pub fn weight(state: &State, action: &Action) -> u64 {
    match action {
        Action::Deliver { .. } | Action::ClientRequest(_) | Action::Persist(_) => 100,
        Action::CheckQuorumTimeout(node) if state.masters[*node as usize].check_quorum_overdue => {
            100
        }
        Action::LeaseExpiryTimeout(..) => 100,
        Action::HeartbeatTimeout(_)
        | Action::Restart(_)
        | Action::Resume(_)
        | Action::Tick
        | Action::ClientResume(_) => 20,
        Action::RequestTimeout(_) => 4,
        Action::CheckQuorumTimeout(_)
        | Action::ElectionTimeout(_)
        | Action::RejoinWaitExpired(_)
        | Action::Pause(_)
        | Action::ClientPause(_) => 2,
        Action::Drop { .. }
        | Action::Crash(_)
        | Action::ForwardLost(_)
        | Action::CloseConnection(_) => 1,
    }
}

/// The weight of an `ElectionTimeout` at a master that has not heard from a leader for
/// `eviction_threshold` heartbeat periods (or [`HOLD_STEPS_MAX`] steps): its timer is due.
pub const ELECTION_TIMEOUT_DUE: u64 = 20;

/// Whether `action` is a leader's message reaching a master (it resets the election timer).
fn from_leader(action: &Action) -> Option<usize> {
    match action {
        Action::Deliver {
            destination: Endpoint::Master(node),
            message:
                Message::Heartbeat { .. }
                | Message::Accept { .. }
                | Message::Commit { .. }
                | Message::CatchUp { .. },
            ..
        } => Some(*node as usize),
        _ => None,
    }
}

impl WeightedChooser {
    /// Whether a master last hearing from a leader at `heard` has its election timer due `now`.
    fn due(&self, heard: Held, now: Held) -> bool {
        now.heartbeats.saturating_sub(heard.heartbeats) >= self.hold_heartbeats
            || now.step.saturating_sub(heard.step) >= HOLD_STEPS_MAX
    }

    fn held_back(&self, walk: &WalkState, state: &State, action: &Action) -> bool {
        let Action::Resume(node) = action else {
            return false;
        };
        walk.held[*node as usize].is_some_and(|held| {
            state
                .used
                .heartbeat_timeouts
                .saturating_sub(held.heartbeats)
                < self.hold_heartbeats
                && walk.step.saturating_sub(held.step) < HOLD_STEPS_MAX
        })
    }
}

impl Chooser<Config> for WeightedChooser {
    type State = WalkState;

    fn new_state(&self, seed: u64) -> WalkState {
        let mut rng = SplitMix64(seed);
        let uniform = rng.next() % UNIFORM_ONE_IN == 0;
        WalkState {
            rng,
            uniform,
            step: 0,
            held: Vec::new(),
            heard: Vec::new(),
        }
    }

    fn choose_initial_state(&self, walk: &mut WalkState, initial_states: &[State]) -> usize {
        walk.rng.below(initial_states.len() as u64) as usize
    }

    fn choose_action(&self, walk: &mut WalkState, state: &State, actions: &[Action]) -> usize {
        walk.step = walk.step.saturating_add(1);
        if walk.uniform {
            return walk.rng.below(actions.len() as u64) as usize;
        }
        walk.held.resize(state.masters.len(), None);
        for (held, master) in walk.held.iter_mut().zip(&state.masters) {
            match (master.paused, *held) {
                (true, None) => {
                    *held = Some(Held {
                        heartbeats: state.used.heartbeat_timeouts,
                        step: walk.step,
                    })
                }
                (false, Some(_)) => *held = None,
                _ => {}
            }
        }
        let now = Held {
            heartbeats: state.used.heartbeat_timeouts,
            step: walk.step,
        };
        walk.heard.resize(state.masters.len(), now);
        let weights: Vec<u64> = actions
            .iter()
            .map(|action| match action {
                _ if self.held_back(walk, state, action) => 0,
                Action::ElectionTimeout(node) if self.due(walk.heard[*node as usize], now) => {
                    ELECTION_TIMEOUT_DUE
                }
                _ => weight(state, action),
            })
            .collect();
        let total: u64 = weights.iter().sum();
        if total == 0 {
            return walk.rng.below(actions.len() as u64) as usize;
        }
        let mut point = walk.rng.below(total);
        let mut chosen = actions.len() - 1;
        for (index, weight) in weights.iter().enumerate() {
            if point < *weight {
                chosen = index;
                break;
            }
            point -= weight;
        }
        if let Some(node) = from_leader(&actions[chosen]) {
            walk.heard[node] = now;
        }
        chosen
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast, and fixed here.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound > 0`; the modulo bias is negligible for these bounds).
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

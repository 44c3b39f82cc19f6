//! Elections: the election timer, pre-vote and phase 1 (`docs/protocol.md` §3, §6.1–§6.3).
//!
//! Pre-vote exists so that a master that was paused, evicted or restarted cannot depose a healthy
//! leader: masters that hear the leader refuse it and name the leader, and the refused master
//! rejoins instead (§6.3). Phase 1 covers every slot above the candidate's commit index at once.

use std::collections::{BTreeMap, BTreeSet};

use super::{Campaign, PreVoteRound, PromiseReport};
use crate::kv::Snapshot;
use crate::leader::{FollowerProgress, Leadership};
use crate::master::Master;
use crate::message::Message;
use crate::trace::{Timer, TraceKind};
use crate::types::{Ballot, Command, Entry, NodeId, Slot};

impl Master {
    /// `ElectionTimeout` (§6.1): a Follower, PreCandidate or Candidate that heard no leader for
    /// its staggered timeout becomes PreCandidate and asks every other master for a pre-vote.
    pub(crate) fn on_election_timeout(&mut self) {
        self.trace.record(|| TraceKind::Timeout {
            timer: Timer::Election,
        });
        let round = self.round_seen_max.max(self.promised.round) + 1;
        let ballot = Ballot::new(round, self.id);
        self.role = crate::master::RoleState::PreCandidate(PreVoteRound {
            ballot,
            grants: BTreeSet::new(),
        });
        self.leader = None;
        self.heard_from_leader = false;
        self.rejoin_wait_ticks = 0;
        self.election_elapsed_ticks = 0;
        self.trace
            .record(|| TraceKind::BecomePreCandidate { ballot });
        for node in self.other_masters() {
            self.send(node, Message::PreVote { ballot });
        }
        if self.quorum() == 1 {
            self.become_candidate();
        }
    }

    /// `PreVote { ballot }` (§6.2). A leader refuses and names itself; a master that heard a
    /// leader since its own election timer last fired refuses and names it; a ballot not above
    /// `promised` is answered `Nack` so the PreCandidate learns the newer round; otherwise the
    /// pre-vote is granted. `promised` does not change.
    pub(crate) fn handle_pre_vote(&mut self, from: NodeId, ballot: Ballot) {
        let reply = if let crate::master::RoleState::Leader(leadership) = &self.role {
            Message::PreVoteReply {
                ballot,
                granted: false,
                leader: Some(leadership.ballot),
            }
        } else if self.heard_from_leader {
            Message::PreVoteReply {
                ballot,
                granted: false,
                leader: self.leader,
            }
        } else if ballot <= self.promised {
            Message::Nack {
                ballot,
                promised: self.promised,
            }
        } else {
            Message::PreVoteReply {
                ballot,
                granted: true,
                leader: None,
            }
        };
        self.send(from, reply);
    }

    /// `PreVoteReply` (§6.2, §6.3): a quorum of grants starts phase 1; a refusal naming a leader
    /// at least as new as `promised` makes this master a Follower of it and sends `Rejoin`.
    pub(crate) fn handle_pre_vote_reply(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        granted: bool,
        leader: Option<Ballot>,
    ) {
        let crate::master::RoleState::PreCandidate(round) = &mut self.role else {
            return;
        };
        if round.ballot != ballot {
            return;
        }
        if granted {
            round.grants.insert(from);
            if round.grants.len() as u64 + 1 >= self.config.quorum() {
                self.become_candidate();
            }
            return;
        }
        let Some(leader) = leader else {
            return;
        };
        if leader < self.promised || leader.node == self.id {
            return;
        }
        self.become_follower(Some(leader));
        self.rejoin_wait_ticks = self.config.election_timeout_ticks;
        let commit_index = self.commit_index;
        self.send(
            leader.node,
            Message::Rejoin {
                ballot: leader,
                commit_index,
            },
        );
    }

    /// §3.1: ballot `(max round seen + 1, self)`, persisted as `promised`, then `Prepare` to
    /// every other master once it is durable.
    fn become_candidate(&mut self) {
        let round = self.round_seen_max.max(self.promised.round) + 1;
        let ballot = Ballot::new(round, self.id);
        self.persist_promised(ballot);
        let mut promises = BTreeMap::new();
        promises.insert(
            self.id,
            PromiseReport {
                entries: self.log.entries_above(self.commit_index),
                snapshot: None,
            },
        );
        self.role = crate::master::RoleState::Candidate(Campaign { ballot, promises });
        self.election_elapsed_ticks = 0;
        self.trace.record(|| TraceKind::BecomeCandidate { ballot });
        let commit_index = self.commit_index;
        for node in self.other_masters() {
            self.send_after_persist(
                node,
                Message::Prepare {
                    ballot,
                    commit_index,
                },
            );
        }
        if self.quorum() == 1 {
            self.become_leader();
        }
    }

    /// `Promise` (§3.4): counts it for the current campaign; a quorum (counting itself) makes
    /// this master Leader.
    pub(crate) fn handle_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        entries: Vec<Entry>,
        snapshot: Option<Snapshot>,
    ) {
        let crate::master::RoleState::Candidate(campaign) = &mut self.role else {
            return;
        };
        if campaign.ballot != ballot {
            return;
        }
        campaign
            .promises
            .insert(from, PromiseReport { entries, snapshot });
        if campaign.promises.len() as u64 >= self.config.quorum() {
            self.become_leader();
        }
    }

    /// §3.4: for every slot above the commit point up to the highest reported, the entry of the
    /// highest ballot among the promises (or `Noop`), re-proposed in this ballot.
    fn become_leader(&mut self) {
        let crate::master::RoleState::Candidate(campaign) =
            std::mem::replace(&mut self.role, crate::master::RoleState::Follower)
        else {
            unreachable!("only a Candidate becomes Leader");
        };
        let ballot = campaign.ballot;
        let newest_snapshot = campaign
            .promises
            .values()
            .filter_map(|report| report.snapshot.as_ref())
            .max_by_key(|snapshot| snapshot.slot)
            .cloned();
        if let Some(snapshot) = newest_snapshot {
            self.install_snapshot(snapshot);
        }
        let chosen = highest_ballot_entries(&campaign, self.commit_index);
        let last_slot = chosen.keys().next_back().copied().unwrap_or(0);
        let last_slot = last_slot.max(self.commit_index);
        let others = self.other_masters();
        self.role = crate::master::RoleState::Leader(Box::new(Leadership {
            ballot,
            active: others.iter().copied().collect(),
            evicted: BTreeSet::new(),
            progress: others
                .iter()
                .map(|node| (*node, FollowerProgress::default()))
                .collect(),
            acks: BTreeMap::new(),
            next_slot: last_slot + 1,
            queue: Default::default(),
            owners: BTreeMap::new(),
            heartbeat_elapsed_ticks: 0,
            commit_index_at_heartbeat: self.commit_index,
            last_slot_at_heartbeat: self.commit_index,
            check_quorum_elapsed_ticks: 0,
            heard_in_window: BTreeSet::new(),
            phase_one_last_slot: last_slot,
            heartbeat_sequence: 0,
            read_acknowledged: BTreeSet::new(),
            reads: Default::default(),
        }));
        if self.leader != Some(ballot) {
            self.counters.leader_changes += 1;
        }
        self.leader = Some(ballot);
        self.trace.record(|| TraceKind::BecomeLeader { ballot });
        for slot in self.commit_index + 1..=last_slot {
            let command = chosen
                .get(&slot)
                .map_or(Command::Noop, |entry| entry.command.clone());
            self.start_phase_two(slot, command);
        }
    }
}

/// The entry of the highest ballot in each slot above `commit_index` among the promises.
fn highest_ballot_entries(campaign: &Campaign, commit_index: Slot) -> BTreeMap<Slot, Entry> {
    let mut chosen: BTreeMap<Slot, Entry> = BTreeMap::new();
    let reported = campaign
        .promises
        .values()
        .flat_map(|report| report.entries.iter());
    for entry in reported.filter(|entry| entry.slot > commit_index) {
        let newer = chosen
            .get(&entry.slot)
            .is_none_or(|current| entry.ballot > current.ballot);
        if newer {
            chosen.insert(entry.slot, entry.clone());
        }
    }
    chosen
}

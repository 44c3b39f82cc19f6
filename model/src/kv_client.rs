//! The revisioned clients (`docs/protocol.md` §14–§17): each runs its script one step at a
//! time — a request, a watch to open, a cancel, a progress request, a disconnect — and records
//! everything it receives, which is what the properties judge.
//!
//! Closed loop, as the register clients: a step is sent once the previous one was answered (a
//! request by its `KvReply`; a watch by `WatchCreated` or its end; a cancel by the watch's end;
//! a progress request by a `WatchProgress` or the watch's end).

use crate::config::KvStep;
use crate::kv_types::{Event, Revision, WatchEnd, WatchId};
use crate::message::{Endpoint, Message};
use crate::state::{KvHistoryEvent, KvReplyRecord, State, WatchRecord};
use crate::step::Step;
use crate::types::{ClientId, RequestId};
use crate::Config;

/// Whether revisioned client `client` may send its next step.
pub fn kv_client_may_send(config: &Config, state: &State, client: ClientId) -> bool {
    let Some(script) = config.kv_script(client) else {
        return false;
    };
    let progress = &state.clients[client as usize];
    let sent = progress.sent as usize;
    let paused = state.lease.paused_clients.contains(&client);
    if progress.gone || paused || sent >= script.steps.len() {
        return false;
    }
    let Some(previous) = sent.checked_sub(1) else {
        return true;
    };
    // A watch without a record has received nothing: not created, no progress, not ended.
    let watch = |position: usize| {
        let watch_id = config.request_id(client, position);
        progress.watches.get(&watch_id)
    };
    match &script.steps[previous] {
        KvStep::Operation(_) => progress
            .kv_replies
            .contains_key(&config.request_id(client, previous)),
        KvStep::Watch(_) => watch(previous).is_some_and(|record| record.created || record.ends > 0),
        KvStep::Cancel { watch: position } => {
            watch(*position as usize).is_some_and(|record| record.ends > 0)
        }
        KvStep::Progress { watch: position } => watch(*position as usize)
            .is_some_and(|record| record.progress.is_some() || record.ends > 0),
        KvStep::Disconnect => false,
    }
}

impl Step<'_> {
    /// `ClientRequest` of a revisioned client: its next step.
    pub fn kv_client_step(&mut self, client: ClientId) {
        let Some(script) = self.config.kv_script(client) else {
            return;
        };
        let index = self.state.clients[client as usize].sent as usize;
        let (Some(step), cluster) = (script.steps.get(index).cloned(), script.cluster) else {
            return;
        };
        let request_id = self.config.request_id(client, index);
        self.state.clients[client as usize].sent += 1;
        let message = match step {
            KvStep::Operation(operation) => {
                self.lease_request_sent(client, &operation);
                if cluster == self.config.cluster {
                    self.state.kv_history.push(KvHistoryEvent::Invoke {
                        request_id,
                        operation: operation.clone(),
                        after: self.state.history.len() as u32,
                    });
                }
                Message::KvRequest {
                    request_id,
                    cluster,
                    operation,
                }
            }
            KvStep::Watch(watch) => {
                let record = WatchRecord::default();
                self.state.clients[client as usize]
                    .watches
                    .insert(request_id, record);
                Message::WatchCreate {
                    watch_id: request_id,
                    cluster,
                    watch,
                }
            }
            KvStep::Cancel { watch } => Message::WatchCancel {
                watch_id: self.config.request_id(client, watch as usize),
            },
            KvStep::Progress { watch } => Message::WatchProgressRequest {
                watch_id: self.config.request_id(client, watch as usize),
            },
            KvStep::Disconnect => {
                self.disconnect(client);
                Message::ClientClosed
            }
        };
        self.send(Endpoint::Client(client), Endpoint::Proxy, message);
    }

    /// The client closes its connection: what is in flight to it is lost, and nothing reaches
    /// it any more (`Step::send`); its `ClientClosed` reaches the proxy after what it sent.
    fn disconnect(&mut self, client: ClientId) {
        self.state.clients[client as usize].gone = true;
        self.state
            .network
            .remove(&(Endpoint::Proxy, Endpoint::Client(client)));
    }

    /// `KvReply`: recorded (a second one is a double completion); the first definite one of the
    /// served cluster goes into the history.
    pub fn handle_kv_reply(
        &mut self,
        client: ClientId,
        request_id: RequestId,
        outcome: crate::kv_types::KvRequestOutcome,
    ) {
        let record = self.state.clients[client as usize]
            .kv_replies
            .entry(request_id)
            .or_insert(KvReplyRecord {
                count: 0,
                outcome: outcome.clone(),
            });
        record.count = record.count.saturating_add(1);
        let first = record.count == 1;
        if let (true, Some(KvStep::Operation(operation))) =
            (first, self.config.kv_step_of(request_id))
        {
            self.lease_reply_received(operation, &outcome);
        }
        let served = self.config.cluster_of(client) == Some(self.config.cluster);
        if !first || !served {
            return;
        }
        let result = match outcome {
            Ok(result) => Some(result),
            Err(error) if error.is_indeterminate() => return,
            Err(_) => None,
        };
        self.state.kv_history.push(KvHistoryEvent::Return {
            request_id,
            result,
            after: self.state.history.len() as u32,
        });
    }

    /// What a client receives for its watch `watch_id`.
    fn watch_record(&mut self, client: ClientId, watch_id: WatchId) -> &mut WatchRecord {
        let record = self.state.clients[client as usize]
            .watches
            .entry(watch_id)
            .or_default();
        if record.end.is_some() {
            record.after_end = true;
        }
        record
    }

    /// `WatchCreated`.
    pub fn handle_watch_created(&mut self, client: ClientId, watch_id: WatchId) {
        self.watch_record(client, watch_id).created = true;
    }

    /// `WatchEvents`: one revision's events, in order.
    pub fn handle_watch_events(
        &mut self,
        client: ClientId,
        watch_id: WatchId,
        revision: Revision,
        events: Vec<Event>,
    ) {
        let group = crate::kv_types::RevisionEvents { revision, events };
        self.watch_record(client, watch_id).events.push(group);
    }

    /// `WatchProgress`.
    pub fn handle_watch_progress(
        &mut self,
        client: ClientId,
        watch_id: WatchId,
        revision: Revision,
    ) {
        self.watch_record(client, watch_id).progress = Some(revision);
    }

    /// `WatchEnded`: counted (a second one is a double end).
    pub fn handle_watch_ended(&mut self, client: ClientId, watch_id: WatchId, outcome: WatchEnd) {
        let record = self.watch_record(client, watch_id);
        record.ends = record.ends.saturating_add(1);
        record.end.get_or_insert(outcome);
    }
}

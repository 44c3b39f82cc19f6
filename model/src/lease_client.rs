//! The lease holder's client library (`docs/protocol.md` §20.4): it notes when it sends a
//! grant or a keep-alive, on its own clock, and counts its lease valid until that send time
//! plus the ttl of the answer (minus the margin, 0 in the model's one clock); a `NotFound`
//! answer or its own revoke loses it. And the clock itself (`Tick`) and the client's
//! stop-the-world pause (`ClientPause`, `ClientResume`), during which it takes no step and
//! receives nothing while time passes.

use crate::kv_types::{KvOperation, KvRequestOutcome, KvResult};
use crate::lease_types::{LeaseError, LeaseHolder};
use crate::step::Step;
use crate::types::ClientId;

impl Step<'_> {
    /// `client` sends `operation`: a grant or keep-alive is timed on its clock.
    pub(crate) fn lease_request_sent(&mut self, client: ClientId, operation: &KvOperation) {
        let lease = match operation {
            KvOperation::LeaseGrant { lease, .. } | KvOperation::LeaseKeepAlive { lease } => *lease,
            _ => return,
        };
        let now = self.state.lease.now;
        let holder = self
            .state
            .lease
            .holders
            .entry(lease)
            .or_insert(LeaseHolder {
                client,
                ..LeaseHolder::default()
            });
        holder.sent_at = Some(now);
    }

    /// The first answer to `client`'s lease request `operation`.
    pub(crate) fn lease_reply_received(
        &mut self,
        operation: &KvOperation,
        outcome: &KvRequestOutcome,
    ) {
        let Some(lease) = operation.lease() else {
            return;
        };
        let Some(holder) = self.state.lease.holders.get_mut(&lease) else {
            return;
        };
        let sent_at = holder.sent_at.take();
        match (operation, outcome) {
            (
                KvOperation::LeaseGrant { .. } | KvOperation::LeaseKeepAlive { .. },
                Ok(
                    KvResult::LeaseGranted { ttl_ticks, .. }
                    | KvResult::LeaseKeptAlive { ttl_ticks, .. },
                ),
            ) => {
                let Some(sent_at) = sent_at else {
                    return;
                };
                let valid_until = sent_at + ttl_ticks;
                holder.valid_until = Some(valid_until);
                let ghost = &mut self.state.lease.ghost;
                if ghost
                    .expired_at
                    .get(&lease)
                    .is_some_and(|expired| *expired < valid_until)
                {
                    ghost.expired_early = true;
                }
            }
            (
                KvOperation::LeaseKeepAlive { .. },
                Ok(KvResult::LeaseRefused(LeaseError::NotFound)),
            )
            | (KvOperation::LeaseRevoke { .. }, Ok(_)) => holder.valid_until = None,
            _ => {}
        }
    }

    /// `Tick`: the one clock advances.
    pub fn tick(&mut self) {
        self.state.lease.now += 1;
    }

    /// `ClientPause`: `client` stops, as a process in a long GC pause.
    pub fn client_pause(&mut self, client: ClientId) {
        self.state.lease.paused_clients.insert(client);
    }

    /// `ClientResume`: the pause ends; the library finds its clock moved on (its lease is valid
    /// only while the clock is below `valid_until`).
    pub fn client_resume(&mut self, client: ClientId) {
        self.state.lease.paused_clients.remove(&client);
    }
}

//! Watches from revision 0, etcd's "now" (`docs/protocol.md` §17.2): the proxy does not know
//! the store's revision, so it asks the stream for the master's and answers `WatchCreated`
//! only once that report resolved the watch's start.
//!
//! Why wait: a watch from "now" promises every change its client makes after hearing
//! `WatchCreated`. Resolved to the stream's next revision at once, a watch from a future
//! revision would have put that ahead of the store; answered before the master's report, a
//! write could commit between the answer and the report and fall below the start. The
//! report's revision was applied (so committed) before the proxy heard it, so every write made
//! after `WatchCreated` has a later revision: no event the client can expect is skipped.

use crate::kv_types::{Revision, WatchId};
use crate::message::Message;
use crate::mutation::Mutation;
use crate::proxy::Proxy;
use crate::types::ClientId;
use crate::watch::Watches;

impl Watches {
    /// The watches of `cluster` from revision 0 that no report has resolved yet.
    pub(crate) fn unresolved(&self, cluster: &str) -> Vec<(ClientId, WatchId)> {
        self.held
            .iter()
            .filter(|(_, watch)| watch.cluster == cluster && watch.next_revision == 0)
            .map(|(key, _)| *key)
            .collect()
    }
}

impl Proxy {
    /// A held watch from revision 0: the stream is asked for a report of the master's
    /// revision — a subscription from 0 if there is none, the same subscription asked again
    /// (every `Subscribe` is answered) if its next revision is known — and the watch waits for
    /// it unanswered.
    pub(crate) fn create_watch_from_now(
        &mut self,
        client: ClientId,
        watch_id: WatchId,
        cluster: &str,
    ) {
        let subscription = self.watches.subscriptions.get(cluster).copied();
        let before_report = self.planted(Mutation::WatchNowBeforeReport);
        if before_report {
            // Planted bug: answered at once, from the stream's next revision if it has one.
            let next = subscription.map_or(0, |subscription| subscription.next_revision);
            if let Some(watch) = self.watches.held.get_mut(&(client, watch_id)) {
                watch.next_revision = next;
            }
            self.send_to_client(client, Message::WatchCreated { watch_id });
        }
        match subscription {
            None => {
                let target = self.subscription_target(cluster, None);
                self.subscribe(cluster, target, 0);
            }
            Some(subscription) if subscription.next_revision == 0 || before_report => {}
            Some(subscription) => {
                self.subscribe(cluster, subscription.master, subscription.next_revision);
            }
        }
    }

    /// The master's report of its `revision` (any `Events` of the subscribed stream) resolves
    /// the `unresolved` watches of `cluster` to `revision + 1` and answers them. If the stream
    /// is ahead of that (it waits for a watch's future revision, or resumed at a master behind
    /// it), it restarts there at the same master; `true` then, and the batch is stale.
    pub(crate) fn resolve_watches_from_now(
        &mut self,
        cluster: &str,
        unresolved: &[(ClientId, WatchId)],
        revision: Revision,
    ) -> bool {
        if unresolved.is_empty() {
            return false;
        }
        let start = revision + 1;
        for (client, watch_id) in unresolved {
            if let Some(watch) = self.watches.held.get_mut(&(*client, *watch_id)) {
                watch.next_revision = start;
            }
            if !self.planted(Mutation::WatchNowBeforeReport) {
                let created = Message::WatchCreated {
                    watch_id: *watch_id,
                };
                self.send_to_client(*client, created);
            }
        }
        let Some(subscription) = self.watches.subscriptions.get(cluster).copied() else {
            return true;
        };
        if start < subscription.next_revision {
            self.subscribe(cluster, subscription.master, start);
            return true;
        }
        false
    }
}

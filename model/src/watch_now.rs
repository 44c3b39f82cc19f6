//! Watches from revision 0, etcd's "now" (`docs/protocol.md` §17.2): the proxy does not know
//! the store's revision, so it asks the stream for the master's report and answers
//! `WatchCreated` only once that report resolved the watch's start.
//!
//! Why wait: a watch from "now" promises every change its client makes after hearing
//! `WatchCreated`. Resolved to the stream's next revision at once, a watch from a future
//! revision would have put that ahead of the store (the seeded bug `watch-now-before-report`);
//! answered before the report, a write could commit between the answer and the report and fall
//! below the start. The report's revision was applied, so chosen, before the proxy heard it:
//! every write made after `WatchCreated` has a later revision. The ghost keeps, per watch from
//! now, what was chosen when it was answered and where it started, for
//! `watch_from_now_misses_nothing`.

use crate::config::Bug;
use crate::kv_types::{Revision, WatchId};
use crate::message::{Endpoint, Message};
use crate::state::WatchFromNow;
use crate::step::Step;
use crate::types::ClientId;
use crate::watch::chosen_revision;

impl Step<'_> {
    /// A held watch from revision 0: the stream is asked for a report of the master's
    /// revision — a subscription from 0 if there is none, the same subscription asked again
    /// (every `Subscribe` is answered) if its next revision is known — and the watch waits for
    /// it unanswered. Resolving "now" to the stream's next revision at once is the seeded bug
    /// `watch-now-before-report`: a watch from a future revision holds that ahead of the store.
    pub(crate) fn create_watch_from_now(&mut self, watch_id: WatchId, client: ClientId) {
        self.state
            .ghost
            .watches_from_now
            .insert(watch_id, WatchFromNow::default());
        let subscription = self.state.proxy.subscription;
        let before_report = self.config.has(Bug::WatchNowBeforeReport);
        if before_report {
            let next = subscription.map_or(0, |subscription| subscription.next_revision);
            if next != 0 {
                self.resolve_watch_from_now(watch_id, next);
            }
            self.answer_watch_from_now(watch_id, client);
        }
        match subscription {
            None => {
                let target = self.subscription_target(None);
                self.subscribe(target, 0, false);
            }
            Some(subscription) if subscription.next_revision == 0 || before_report => {}
            Some(subscription) => {
                let next = subscription.next_revision;
                self.subscribe(subscription.master, next, subscription.resumed);
            }
        }
    }

    /// `WatchCreated` for a watch from revision 0, noting what was chosen when it was sent.
    fn answer_watch_from_now(&mut self, watch_id: WatchId, client: ClientId) {
        let chosen = chosen_revision(self);
        if let Some(now) = self.state.ghost.watches_from_now.get_mut(&watch_id) {
            now.chosen_at_created = Some(chosen);
        }
        self.note_watch_from_now(watch_id);
        let created = Message::WatchCreated { watch_id };
        self.send(Endpoint::Proxy, Endpoint::Client(client), created);
    }

    /// Watch `watch_id` from revision 0 is owed `start` on.
    fn resolve_watch_from_now(&mut self, watch_id: WatchId, start: Revision) {
        if let Some(watch) = self.state.proxy.watches.get_mut(&watch_id) {
            watch.next_revision = start;
        }
        if let Some(now) = self.state.ghost.watches_from_now.get_mut(&watch_id) {
            now.start = Some(start);
        }
        self.note_watch_from_now(watch_id);
    }

    /// `watch_from_now_misses_nothing` is broken once a watch from revision 0 is known to start
    /// above the revision after the highest one chosen when it was created.
    fn note_watch_from_now(&mut self, watch_id: WatchId) {
        let Some(now) = self.state.ghost.watches_from_now.get(&watch_id) else {
            return;
        };
        if let (Some(chosen), Some(start)) = (now.chosen_at_created, now.start) {
            if start > chosen + 1 {
                self.state.ghost.watch_from_now_missed = true;
            }
        }
    }

    /// The master's report of its `revision` (any `Events` of the subscribed stream) resolves
    /// every watch from revision 0 held unresolved to `revision + 1` and answers it: everything
    /// its client writes after hearing `WatchCreated` makes a later revision. If the stream is
    /// ahead of that (it waits for a watch's future revision, or resumed at a master behind
    /// it), it restarts from there at the same master; `true` then, and the batch is stale.
    pub(crate) fn resolve_watches_from_now(
        &mut self,
        unresolved: &[(WatchId, ClientId)],
        revision: Revision,
    ) -> bool {
        if unresolved.is_empty() {
            return false;
        }
        let start = revision + 1;
        for (watch_id, client) in unresolved {
            self.resolve_watch_from_now(*watch_id, start);
            if !self.config.has(Bug::WatchNowBeforeReport) {
                self.answer_watch_from_now(*watch_id, *client);
            }
        }
        let Some(subscription) = self.state.proxy.subscription else {
            return true;
        };
        if start < subscription.next_revision {
            self.subscribe(subscription.master, start, subscription.resumed);
            return true;
        }
        false
    }

    /// The open watches from revision 0 not resolved yet, with their clients.
    pub(crate) fn unresolved_watches(&self) -> Vec<(WatchId, ClientId)> {
        let watches = self.state.proxy.watches.iter();
        watches
            .filter(|(_, watch)| watch.next_revision == 0)
            .map(|(watch_id, watch)| (*watch_id, watch.client))
            .collect()
    }

    /// Whether `watch_id` is a watch from revision 0 not resolved yet.
    pub(crate) fn unresolved(&self, watch_id: WatchId) -> bool {
        let watch = self.state.proxy.watches.get(&watch_id);
        watch.is_some_and(|watch| watch.next_revision == 0)
    }
}

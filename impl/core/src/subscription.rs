//! The master's side of a proxy's subscription (`docs/protocol.md` §17.1): a master streams
//! its committed, applied revisions to the proxy from the revision the proxy asks for. Any
//! master can, leader or not, since a committed revision is the same everywhere (§13
//! `agreement`). It keeps one number per subscribed proxy, the next revision to send; the
//! events come from its store's history (§14.1), so a subscription costs the master nothing
//! else whatever the number of watches behind it.
//!
//! A subscription lives as long as its connection: a crash loses it with the master's volatile
//! state, and a host whose connection to a proxy closes calls [`Master::proxy_closed`].

use crate::kv_types::Revision;
use crate::master::Master;
use crate::message::{Envelope, Message};
use crate::types::{Peer, ProxyId};

impl Master {
    /// `Subscribe { from_revision }`: refused `SubscriptionCompacted` below the compaction
    /// point; otherwise it replaces any earlier subscription of `proxy`, and what is committed
    /// from `from_revision` on goes out at once (0: from the next revision), in one `Events`
    /// that reports the master's revision even when it brings nothing: a watch from revision 0
    /// waits for that report (§17.2).
    pub(crate) fn handle_subscribe(&mut self, proxy: ProxyId, from_revision: Revision) {
        let current = self.store.revision();
        let compact_revision = self.store.compact_revision();
        let from = match from_revision {
            0 => current + 1,
            revision => revision,
        };
        if from < compact_revision {
            self.subscriptions.remove(&proxy);
            self.send_to_proxy(proxy, Message::SubscriptionCompacted { compact_revision });
            return;
        }
        let revisions = match current >= from {
            true => self.store.events_from(from).cloned().collect(),
            false => Vec::new(),
        };
        self.subscriptions.insert(proxy, from.max(current + 1));
        let events = Message::Events {
            revision: current,
            revisions,
        };
        self.send_to_proxy(proxy, events);
    }

    /// `Unsubscribe`: the proxy holds no watch any more.
    pub(crate) fn handle_unsubscribe(&mut self, proxy: ProxyId) {
        self.subscriptions.remove(&proxy);
    }

    /// The host's connection to `proxy` closed: its subscription ends with it (§17.1). A host
    /// must call this whenever a proxy connection closes.
    pub fn proxy_closed(&mut self, proxy: ProxyId) {
        self.subscriptions.remove(&proxy);
    }

    /// The proxies subscribed here, with the next revision each is owed (status and tests).
    pub fn subscriptions(&self) -> impl Iterator<Item = (ProxyId, Revision)> + '_ {
        self.subscriptions
            .iter()
            .map(|(proxy, next)| (*proxy, *next))
    }

    /// After a committed slot made a revision (or a snapshot moved the store): every
    /// subscription gets what it has not had.
    pub(crate) fn stream_subscriptions(&mut self) {
        let proxies: Vec<ProxyId> = self.subscriptions.keys().copied().collect();
        for proxy in proxies {
            self.stream_to(proxy);
        }
    }

    /// Sends `proxy` every applied revision from its next one on, if any; a subscription the
    /// compaction point passed (a snapshot installed past it) is refused instead.
    fn stream_to(&mut self, proxy: ProxyId) {
        let Some(&next) = self.subscriptions.get(&proxy) else {
            return;
        };
        let current = self.store.revision();
        if current < next {
            return;
        }
        let compact_revision = self.store.compact_revision();
        if next < compact_revision {
            self.subscriptions.remove(&proxy);
            self.send_to_proxy(proxy, Message::SubscriptionCompacted { compact_revision });
            return;
        }
        let revisions: Vec<_> = self.store.events_from(next).cloned().collect();
        self.subscriptions.insert(proxy, current + 1);
        if revisions.is_empty() {
            // Nothing from `next` on (revision 1, the empty store's, has no events).
            return;
        }
        self.send_to_proxy(
            proxy,
            Message::Events {
                revision: current,
                revisions,
            },
        );
    }

    /// A message to a proxy that depends on nothing unpersisted (committed state only).
    fn send_to_proxy(&mut self, proxy: ProxyId, message: Message) {
        self.record_send_to(Peer::Proxy(proxy), &message);
        self.output.replies.push(Envelope {
            to: Peer::Proxy(proxy),
            message,
        });
    }
}

//! The master's side of the proxy's subscription (`docs/protocol.md` §17.1): a master streams
//! its committed, applied revisions to the proxy from the revision the proxy asks for; any
//! master can, leader or not, since a committed revision is the same everywhere (§13
//! `agreement`). It keeps one number per subscription, the next revision to send; the events
//! come from its store's history, kept from its compaction point on.
//!
//! A subscription lives as long as its connection: a crash (volatile state), or a lost
//! subscription message (a lost connection: TCP loses nothing else), ends it, and the proxy's
//! host tells the proxy (`ConnectionClosed`), which resumes elsewhere (`crate::watch`).

use crate::kv_types::Revision;
use crate::message::{Endpoint, Message};
use crate::step::Step;
use crate::types::NodeId;

impl Step<'_> {
    /// `Subscribe { from_revision }`: refused `SubscriptionCompacted` below the compaction
    /// point; otherwise it replaces any earlier subscription, and what is committed from
    /// `from_revision` on goes out at once (0: from the next revision), in one `Events` that
    /// reports the master's revision even when it brings nothing: a watch from revision 0
    /// waits for that report (§17.2).
    pub fn handle_subscribe(&mut self, node: NodeId, from_revision: Revision) {
        let commit_index = self.state.masters[node as usize].commit_index;
        let store = self.state.store_through(self.config, node, commit_index);
        let from = match from_revision {
            0 => store.revision + 1,
            revision => revision,
        };
        if from < store.compact_revision {
            self.state.masters[node as usize].subscription = None;
            let refusal = Message::SubscriptionCompacted {
                compact_revision: store.compact_revision,
            };
            self.send(Endpoint::Master(node), Endpoint::Proxy, refusal);
            return;
        }
        let revisions = store.events_from(from);
        self.state.masters[node as usize].subscription = Some(from.max(store.revision + 1));
        let events = Message::Events {
            revision: store.revision,
            revisions,
        };
        self.send(Endpoint::Master(node), Endpoint::Proxy, events);
    }

    /// `Unsubscribe`: the proxy holds no watch any more.
    pub fn handle_unsubscribe(&mut self, node: NodeId) {
        self.state.masters[node as usize].subscription = None;
    }

    /// The connection between the proxy and `node` is lost (a dropped subscription message,
    /// or `node` crashed): the master's subscription ends, the subscription messages queued on
    /// it either way are gone with it, and the proxy's host learns it if the proxy is
    /// subscribed there.
    pub fn subscription_connection_lost(&mut self, node: NodeId) {
        self.state.masters[node as usize].subscription = None;
        for link in [
            (Endpoint::Proxy, Endpoint::Master(node)),
            (Endpoint::Master(node), Endpoint::Proxy),
        ] {
            if let Some(messages) = self.state.network.get_mut(&link) {
                messages.retain(|message| !message.is_subscription());
                if messages.is_empty() {
                    self.state.network.remove(&link);
                }
            }
        }
        let subscribed_here = self
            .state
            .proxy
            .subscription
            .is_some_and(|subscription| subscription.master == node);
        if subscribed_here {
            self.state
                .network
                .entry((Endpoint::Master(node), Endpoint::Proxy))
                .or_default()
                .push(Message::ConnectionClosed);
        }
    }
}

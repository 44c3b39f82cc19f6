//! Where the core's envelopes go: to another master over its outbound link, or to a proxy
//! over the connection the proxy dialed. Both drop (and count) rather than wait: the driver
//! never blocks on a slow peer (`docs/protocol.md` §4.7 retransmits what is lost).
//!
//! A subscription's stream (`Events`, `SubscriptionCompacted`, §17.1) must not lose a message
//! silently: the proxy would wait for a revision that never comes. One that cannot be queued
//! closes the proxy's connection instead, which ends the subscription here and makes the proxy
//! resume elsewhere from what it has. An `Events` catch-up above half the frame limit leaves in
//! several frames, each within it, each continuing the stream (§17.5).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil_core::kv_types::RevisionEvents;
use vigil_core::{Envelope, Message, NodeId, Peer, ProxyId};

use super::MasterSettings;
use crate::codec::{DialerRole, Hello, PROTOCOL_VERSION};
use crate::metrics as names;
use crate::platform::Network;
use crate::trace_sink::TraceStamp;
use crate::transport::{self, LinkSender};
use crate::wire::PeerFrame;

/// Routes the core's envelopes to links (masters) and connection queues (proxies).
#[derive(Debug)]
pub(super) struct Router {
    /// The outbound link to each other master.
    pub(super) links: BTreeMap<NodeId, LinkSender<PeerFrame>>,
    /// Each connected proxy's connection.
    pub(super) proxies: Mutex<HashMap<ProxyId, ProxyConnection>>,
    /// The frame limit, which bounds one `Events` frame.
    frame_bytes_max: usize,
    /// This master's id (metric label).
    node: NodeId,
}

/// A proxy's connection as the router sees it.
#[derive(Debug)]
pub(super) struct ProxyConnection {
    /// The frames queued to it.
    pub(super) queue: mpsc::Sender<PeerFrame>,
    /// Cancelled to close it.
    pub(super) close: CancellationToken,
}

impl Router {
    /// Spawns a link to every other master (they stop with `shutdown`).
    pub(super) fn connect<N: Network>(
        network: &N,
        settings: &MasterSettings,
        shutdown: &CancellationToken,
    ) -> Router {
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster: settings.cluster.clone(),
            role: DialerRole::Master(settings.node_id),
        };
        let links = (0..settings.masters.len() as NodeId)
            .filter(|node| *node != settings.node_id)
            .map(|node| {
                let sender = transport::spawn_link_on::<N, PeerFrame, PeerFrame>(
                    network.clone(),
                    settings.masters[node as usize].clone(),
                    hello.clone(),
                    settings.link_settings(),
                    None,
                    shutdown.clone(),
                );
                (node, sender)
            })
            .collect();
        Router {
            links,
            proxies: Mutex::new(HashMap::new()),
            frame_bytes_max: settings.host.frame_bytes_max,
            node: settings.node_id,
        }
    }

    /// Sends `envelope` with its trace stamp (none when tracing is off).
    pub(super) fn send(&self, envelope: Envelope, stamp: Option<TraceStamp>) {
        if let (
            Peer::Proxy(proxy),
            Message::Events { .. } | Message::SubscriptionCompacted { .. },
        ) = (envelope.to, &envelope.message)
        {
            self.send_stream(proxy, envelope.message, stamp);
            return;
        }
        let is_heartbeat = matches!(envelope.message, Message::Heartbeat { .. });
        let frame = PeerFrame::Protocol {
            message: envelope.message,
            stamp,
        };
        let sent = match envelope.to {
            Peer::Master(node) => match self.links.get(&node) {
                Some(link) => link.send(frame).is_ok(),
                None => false,
            },
            Peer::Proxy(proxy) => self.send_to_proxy(proxy, frame),
        };
        if !sent && is_heartbeat {
            metrics::counter!(names::HEARTBEAT_SEND_FAILURES).increment(1);
        }
    }

    /// Queues a subscription's message to `proxy`, in frames within the frame limit; if one
    /// cannot be queued, closes the connection (counted) so the proxy resumes elsewhere.
    fn send_stream(&self, proxy: ProxyId, message: Message, stamp: Option<TraceStamp>) {
        let frames = split_events(message, self.frame_bytes_max / 2);
        let mut stamp = stamp;
        for message in frames {
            let frame = PeerFrame::Protocol {
                message,
                stamp: stamp.take(),
            };
            if !self.send_to_proxy(proxy, frame) {
                let proxies = self.proxies.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(connection) = proxies.get(&proxy) {
                    tracing::warn!(node = self.node, proxy, "a subscription's frame could not be queued; closing the proxy's connection");
                    metrics::counter!(names::MASTER_SUBSCRIPTION_RESETS, "node" => self.node.to_string())
                        .increment(1);
                    connection.close.cancel();
                }
                return;
            }
        }
    }

    /// Queues `frame` to `proxy`'s connection, or drops it (counted) if it is gone or full.
    pub(super) fn send_to_proxy(&self, proxy: ProxyId, frame: PeerFrame) -> bool {
        let proxies = self.proxies.lock().unwrap_or_else(|p| p.into_inner());
        let sent = proxies
            .get(&proxy)
            .is_some_and(|connection| connection.queue.try_send(frame).is_ok());
        if !sent {
            metrics::counter!(names::PEER_SEND_DROPS, "peer" => "proxy").increment(1);
        }
        sent
    }

    /// The outbound link to master `node`.
    pub(super) fn link(&self, node: NodeId) -> Option<&LinkSender<PeerFrame>> {
        self.links.get(&node)
    }
}

/// `message` as frames of about `bytes_max` encoded bytes at most: an `Events` whose revisions
/// encode above it becomes several, oldest first, each saying that every revision up to its
/// last one was sent; the last keeps the master's applied revision. One revision is never
/// split (a revision larger than the bound leaves alone). Anything else is left whole.
fn split_events(message: Message, bytes_max: usize) -> Vec<Message> {
    let Message::Events {
        revision,
        revisions,
    } = message
    else {
        return vec![message];
    };
    let mut frames = Vec::new();
    let mut batch: Vec<RevisionEvents> = Vec::new();
    let mut batch_bytes = 0usize;
    for group in revisions {
        let bytes = postcard::experimental::serialized_size(&group).unwrap_or(usize::MAX);
        if !batch.is_empty() && batch_bytes.saturating_add(bytes) > bytes_max {
            let last = batch.last().map_or(revision, |group| group.revision);
            frames.push(Message::Events {
                revision: last,
                revisions: std::mem::take(&mut batch),
            });
            batch_bytes = 0;
        }
        batch_bytes = batch_bytes.saturating_add(bytes);
        batch.push(group);
    }
    frames.push(Message::Events {
        revision,
        revisions: batch,
    });
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::kv_types::{Event, EventKind, KeyValue};

    fn group(revision: u64, value_bytes: usize) -> RevisionEvents {
        let kv = KeyValue {
            key: b"k".to_vec(),
            value: Some(vec![7; value_bytes]),
            create_revision: 2,
            mod_revision: revision,
            version: revision - 1,
        };
        RevisionEvents {
            revision,
            events: vec![Event {
                kind: EventKind::Put,
                kv,
                prev_kv: None,
            }],
        }
    }

    #[test]
    fn a_large_catch_up_leaves_in_frames_that_continue_the_stream() {
        let revisions: Vec<_> = (2..12).map(|revision| group(revision, 100)).collect();
        let message = Message::Events {
            revision: 12,
            revisions: revisions.clone(),
        };
        let frames = split_events(message, 350);
        assert!(frames.len() > 1, "{frames:?}");
        let mut delivered = Vec::new();
        for (index, frame) in frames.iter().enumerate() {
            let Message::Events {
                revision,
                revisions,
            } = frame
            else {
                panic!("{frame:?}");
            };
            assert!(!revisions.is_empty());
            let last = revisions.last().unwrap().revision;
            let expected = if index + 1 == frames.len() { 12 } else { last };
            assert_eq!(*revision, expected);
            assert!(postcard::to_allocvec(revisions).unwrap().len() <= 350 || revisions.len() == 1);
            delivered.extend(revisions.iter().cloned());
        }
        assert_eq!(delivered, revisions);
    }

    #[test]
    fn a_small_batch_and_other_messages_stay_whole() {
        let message = Message::Events {
            revision: 3,
            revisions: vec![group(2, 10), group(3, 10)],
        };
        assert_eq!(split_events(message.clone(), 1 << 20), vec![message]);
        let compacted = Message::SubscriptionCompacted {
            compact_revision: 4,
        };
        assert_eq!(split_events(compacted.clone(), 1), vec![compacted]);
    }
}

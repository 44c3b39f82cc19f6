//! Where the core's envelopes go: to another master over its outbound link, or to a proxy
//! over the connection the proxy dialed. Both drop (and count) rather than wait: the driver
//! never blocks on a slow peer (`docs/protocol.md` §4.7 retransmits what is lost).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
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
    /// The frame queue of each connected proxy's connection.
    pub(super) proxies: Mutex<HashMap<ProxyId, mpsc::Sender<PeerFrame>>>,
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
        }
    }

    /// Sends `envelope` with its trace stamp (none when tracing is off).
    pub(super) fn send(&self, envelope: Envelope, stamp: Option<TraceStamp>) {
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

    /// Queues `frame` to `proxy`'s connection, or drops it (counted) if it is gone or full.
    pub(super) fn send_to_proxy(&self, proxy: ProxyId, frame: PeerFrame) -> bool {
        let proxies = self.proxies.lock().unwrap_or_else(|p| p.into_inner());
        let sent = proxies
            .get(&proxy)
            .is_some_and(|queue| queue.try_send(frame).is_ok());
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

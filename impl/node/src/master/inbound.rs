//! A master's inbound connections: the accept loop, the listener's side of the handshake, and
//! each connection's frames into the driver's bounded inbox (a proxy's connection also gets a
//! writer task for the frames the router queues to it).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_core::{Message, NodeId, Peer, ProxyId};

use super::router::{ProxyConnection, Router};
use super::MasterSettings;
use crate::codec::{self, DialerRole};
use crate::platform::Network;
use crate::trace_sink::TraceStamp;
use crate::transport::{self, HandshakePolicy};
use crate::wire::PeerFrame;

/// Messages waiting in a master's inbox at most; readers wait (TCP pushes back) beyond it.
const INBOX_MESSAGES_MAX: usize = 4096;
/// Frames queued to one proxy connection at most; beyond it replies are dropped (counted; the
/// proxy's request timeout answers its client). Above a proxy's default `in_flight_max`
/// (10,000), which bounds the replies it can be owed, so a leader answering a whole read round
/// or a burst of commits at once never drops one; a queued reply is about 128 bytes plus its
/// value (`docs/operations.md` §6).
const PROXY_QUEUE_FRAMES_MAX: usize = 16_384;

/// An input for the driver from a connection.
#[derive(Debug)]
pub(super) enum Inbound {
    Protocol {
        from: Peer,
        message: Message,
        stamp: Option<TraceStamp>,
        /// False once the connection it came on has closed: then it is lost, as what a
        /// crashed sender had in flight is (`protocol.md` §8). (A frame read before the close
        /// was seen is handled: an evicting leader cannot take back what it wrote, §5.1.)
        open: Arc<AtomicBool>,
    },
    StatusQuery {
        proxy: ProxyId,
        query_id: u64,
    },
    /// A proxy's connection closed, after every frame it delivered: its subscription ends
    /// (`Master::proxy_closed`, `protocol.md` §17.1).
    ProxyClosed {
        proxy: ProxyId,
    },
}

/// Starts accepting connections on `listener` (a task on `network`, stopped by `shutdown`);
/// returns the driver's end of the inbox their frames go to.
pub(super) fn serve<N: Network>(
    network: &N,
    listener: N::Listener,
    settings: &MasterSettings,
    router: Arc<Router>,
    shutdown: &CancellationToken,
) -> mpsc::Receiver<Inbound> {
    let (inbox, inbox_receiver) = mpsc::channel(INBOX_MESSAGES_MAX);
    let context = Arc::new(ConnectionContext {
        policy: HandshakePolicy {
            cluster: Some(settings.cluster.clone()),
            accept_masters: Some((settings.masters.len() as NodeId, settings.node_id)),
            accept_proxies: true,
            accept_clients: false,
            authentication: settings.authentication.clone(),
        },
        settings: settings.clone(),
        inbox,
        router,
        next_proxy_id: AtomicU64::new(1),
    });
    network.spawn(accept_loop(
        network.clone(),
        listener,
        context,
        shutdown.clone(),
    ));
    inbox_receiver
}

/// Aborts a task when dropped (a connection's writer, when the connection's task ends).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What every connection of this master shares.
struct ConnectionContext {
    policy: HandshakePolicy,
    settings: MasterSettings,
    inbox: mpsc::Sender<Inbound>,
    router: Arc<Router>,
    next_proxy_id: AtomicU64,
}

/// Accepts this master's connections until `shutdown`, each in a task of its own.
async fn accept_loop<N: Network>(
    network: N,
    listener: N::Listener,
    context: Arc<ConnectionContext>,
    shutdown: CancellationToken,
) {
    let limits = context.settings.host.server_limits();
    let connections = network.clone();
    transport::accept_connections(
        network,
        listener,
        limits,
        shutdown,
        "master",
        move |stream, peer| serve_connection(connections.clone(), stream, peer, context.clone()),
    )
    .await;
}

/// One inbound connection: handshake, then frames into the inbox until it closes or misbehaves.
async fn serve_connection<N: Network>(
    network: N,
    stream: N::Stream,
    peer: SocketAddr,
    context: Arc<ConnectionContext>,
) {
    let host = &context.settings.host;
    let (read_half, write_half) = N::split(stream);
    let (mut reader, mut writer) = codec::framed(read_half, write_half, host.frame_bytes_max);
    let timeout = host.server_limits().handshake_timeout;
    let Ok(role) = transport::accept_hello(
        &mut reader,
        &mut writer,
        &context.policy,
        timeout,
        peer,
        "master",
    )
    .await
    else {
        return;
    };
    let from = match role {
        // The handshake checked the id against the configuration.
        DialerRole::Master(node) => Peer::Master(node),
        DialerRole::Proxy => Peer::Proxy(context.next_proxy_id.fetch_add(1, Ordering::Relaxed)),
        DialerRole::Client => return, // refused by the handshake policy
    };
    // An authenticated master or proxy may send a snapshot or a catch-up (`codec.rs`).
    codec::raise_read_limit(&mut reader, host.peer_frame_bytes_max);
    codec::raise_write_limit(&mut writer, host.peer_frame_bytes_max);
    let close = CancellationToken::new();
    let writer_task = match from {
        Peer::Proxy(proxy) => {
            let (queue, mut frames) = mpsc::channel::<PeerFrame>(PROXY_QUEUE_FRAMES_MAX);
            let connection = ProxyConnection {
                queue,
                close: close.clone(),
            };
            context
                .router
                .proxies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(proxy, connection);
            let close_on_error = close.clone();
            // Aborted when this connection ends, also when a stopping master drops it: a
            // stopped master writes nothing more.
            Some(AbortOnDrop(network.spawn(async move {
                while let Some(frame) = frames.recv().await {
                    if let Err(error) = codec::write_value(&mut writer, &frame).await {
                        // A frame that did not leave may be a subscription's: the connection
                        // closes, so the proxy resumes elsewhere (§17.1).
                        tracing::debug!(%error, "writing to a proxy failed; closing");
                        close_on_error.cancel();
                        return;
                    }
                }
            })))
        }
        Peer::Master(_) => None,
    };
    let open = Arc::new(AtomicBool::new(true));
    tokio::select! {
        () = read_frames(&mut reader, from, peer, &context, &open) => {}
        () = close.cancelled() => {}
    }
    // What this connection delivered and the driver has not handled yet is lost with it.
    open.store(false, Ordering::Release);
    if let Peer::Proxy(proxy) = from {
        context
            .router
            .proxies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&proxy);
        drop(writer_task);
        let _ = context.inbox.send(Inbound::ProxyClosed { proxy }).await;
    }
}

async fn read_frames<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut codec::FrameReader<R>,
    from: Peer,
    peer: SocketAddr,
    context: &ConnectionContext,
    open: &Arc<AtomicBool>,
) {
    loop {
        let frame = match codec::read_value::<PeerFrame, _>(reader).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(error) => {
                transport::record_bad_frame("master", peer, &error);
                return;
            }
        };
        let inbound = match (from, frame) {
            (Peer::Master(_), PeerFrame::Protocol { message, stamp })
                if message.ballot().is_some() =>
            {
                Inbound::Protocol {
                    from,
                    message,
                    stamp,
                    open: open.clone(),
                }
            }
            (
                Peer::Proxy(_),
                PeerFrame::Protocol {
                    message:
                        message @ (Message::Propose { .. }
                        | Message::KvPropose { .. }
                        | Message::Subscribe { .. }
                        | Message::Unsubscribe),
                    stamp,
                },
            ) => Inbound::Protocol {
                from,
                message,
                stamp,
                open: open.clone(),
            },
            (Peer::Proxy(proxy), PeerFrame::StatusQuery { query_id }) => {
                Inbound::StatusQuery { proxy, query_id }
            }
            (_, frame) => {
                let error = codec::CodecError::Decode {
                    bytes: 0,
                    reason: format!("unexpected frame from {from}: {frame:?}"),
                };
                transport::record_bad_frame("master", peer, &error);
                return;
            }
        };
        if context.inbox.send(inbound).await.is_err() {
            return;
        }
    }
}

//! TCP between masters, and from proxies to masters and clients to proxies: the accept loop
//! (a semaphore caps connections), the listener's side of the handshake, and outbound links
//! with a bounded send queue and reconnect with capped exponential backoff.
//!
//! An outbound link queues only while it is connected, and a lost connection loses its queue:
//! what is delivered on a connection was sent while that connection was up, so a master that
//! crashed and restarted never receives what was sent to its previous incarnation (the
//! protocol's and the model's crash loses messages in flight, `protocol.md` §8).
//!
//! Why bounded queues that drop: the incident's follower was frozen for seconds while its
//! leader kept producing heartbeats and accepts for it. Anything queued for a peer that does
//! not read must be bounded, or a slow peer turns into memory growth on a healthy one. Paxos
//! tolerates lost messages (every message is retried by a timer or superseded), so dropping
//! and counting is safe where blocking or growing is not.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::auth::{self, AuthError, Authentication, ExchangeContext};
use crate::codec::{self, CodecError, DialerRole, FrameReader, FrameWriter, Hello, HelloReply};
use crate::metrics as names;
use crate::platform::{Network, TokioNetwork};

/// Limits of a listening server.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Open connections at most; the accept loop waits for one to close beyond it.
    pub connections_max: usize,
    /// Largest frame accepted.
    pub frame_bytes_max: usize,
    /// Time a dialer has to send its `Hello`; a silent connection must not hold a permit forever.
    pub handshake_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            connections_max: 1024,
            frame_bytes_max: codec::FRAME_BYTES_MAX_DEFAULT,
            handshake_timeout: Duration::from_secs(5),
        }
    }
}

/// Accepts connections until `shutdown` is cancelled, calling `on_connection` in a task of
/// its own for each (spawned on `network`). Holds a semaphore permit per connection (mini-redis style), so at most
/// `connections_max` are served at once; a listener error is logged and accepting continues.
pub async fn accept_connections<N, F, Fut>(
    network: N,
    listener: N::Listener,
    limits: ServerLimits,
    shutdown: CancellationToken,
    server_label: &'static str,
    on_connection: F,
) where
    N: Network,
    F: Fn(N::Stream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.connections_max));
    // Every `select!` of the host is `biased`: its order is then fixed, which a deterministic
    // simulation needs (an unbiased one draws from tokio's unseeded random numbers).
    loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            accepted = N::accept(&listener) => accepted,
        };
        let (stream, address) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(server = server_label, %error, "accept failed");
                continue;
            }
        };
        metrics::counter!(names::CONNECTIONS_ACCEPTED, "server" => server_label).increment(1);
        let gauge = metrics::gauge!(names::CONNECTIONS_OPEN, "server" => server_label);
        gauge.increment(1.0);
        let connection = on_connection(stream, address);
        let connection_shutdown = shutdown.clone();
        network.spawn(async move {
            tokio::select! {
                biased;
                _ = connection_shutdown.cancelled() => {}
                _ = connection => {}
            }
            gauge.decrement(1.0);
            drop(permit);
        });
    }
}

/// Why a listener refused a dialer. Logged and counted; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The dialer sent nothing within the handshake timeout.
    #[error("no Hello within {0:?}")]
    Timeout(Duration),
    /// The dialer closed before saying hello.
    #[error("closed before Hello")]
    Closed,
    /// The first frame was not a readable `Hello`.
    #[error("bad Hello: {0}")]
    BadFrame(#[from] CodecError),
    /// The dialer speaks another protocol version.
    #[error("protocol version {theirs}, this node speaks {ours}")]
    Version {
        /// The dialer's version.
        theirs: u32,
        /// Ours.
        ours: u32,
    },
    /// The dialer belongs to another cluster.
    #[error("cluster {theirs:?}, this node serves {ours:?}")]
    Cluster {
        /// The dialer's cluster.
        theirs: String,
        /// Ours.
        ours: String,
    },
    /// The dialer's role may not connect here (e.g. a client dialing a master).
    #[error("role {0:?} not accepted here")]
    Role(DialerRole),
    /// A master dialer claims an id outside the configuration, or this node's own id.
    #[error("master id {theirs} is not another master of 0..{masters}")]
    NodeId {
        /// The id claimed.
        theirs: u64,
        /// The configuration's size.
        masters: u64,
    },
    /// The listener refused us (dialer side).
    #[error("refused by the listener: {0}")]
    Refused(String),
    /// The cluster-secret exchange failed (`auth.rs`): a wrong or missing secret.
    #[error("authentication: {0}")]
    Auth(#[from] AuthError),
}

impl HandshakeError {
    /// The `reason` label of `vigil_handshake_rejections_total`.
    pub fn reason_label(&self) -> &'static str {
        match self {
            HandshakeError::Timeout(_) => "timeout",
            HandshakeError::Closed => "closed",
            HandshakeError::BadFrame(_) => "bad_frame",
            HandshakeError::Version { .. } => "version",
            HandshakeError::Cluster { .. } => "cluster",
            HandshakeError::Role(_) => "role",
            HandshakeError::NodeId { .. } => "node_id",
            HandshakeError::Refused(_) => "refused",
            HandshakeError::Auth(_) => "auth",
        }
    }
}

/// What a listener expects of dialers.
#[derive(Clone, Debug)]
pub struct HandshakePolicy {
    /// The cluster dialers must belong to; `None` accepts any (a proxy serving clients).
    pub cluster: Option<String>,
    /// Whether masters may dial, and which ids: `Some((masters, own_id))` accepts ids in
    /// `0..masters` other than `own_id`.
    pub accept_masters: Option<(u64, u64)>,
    /// Whether proxies may dial.
    pub accept_proxies: bool,
    /// Whether clients may dial.
    pub accept_clients: bool,
    /// Whether master and proxy dialers must prove the cluster secret (clients present
    /// tokens with each request instead, `proxy.rs`).
    pub authentication: Authentication,
}

/// The listener's side of the handshake: reads the `Hello`, checks it against `policy`,
/// answers, authenticates master and proxy dialers (`auth.rs`), and on refusal logs the
/// reason and counts it. The caller closes on `Err`.
pub async fn accept_hello<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    policy: &HandshakePolicy,
    timeout: Duration,
    peer_address: SocketAddr,
    server_label: &'static str,
) -> Result<DialerRole, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let exchange = async {
        let hello = match codec::read_value::<Hello, _>(reader).await {
            Ok(None) => return Err(HandshakeError::Closed),
            Err(error) => return Err(HandshakeError::BadFrame(error)),
            Ok(Some(hello)) => hello,
        };
        let role = check_hello(&hello, policy)?;
        codec::write_value(writer, &HelloReply::Welcome).await?;
        if matches!(role, DialerRole::Master(_) | DialerRole::Proxy) {
            let context = ExchangeContext {
                cluster: &hello.cluster,
                role: &role,
            };
            auth::authenticate_dialer(reader, writer, &policy.authentication, &context)
                .await
                .map_err(|error| match error {
                    // Garbage instead of an exchange frame is a bad frame like a garbage Hello.
                    AuthError::Frame(error) => HandshakeError::BadFrame(error),
                    error => HandshakeError::Auth(error),
                })?;
        }
        Ok(role)
    };
    let result = tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(HandshakeError::Timeout(timeout)));
    match result {
        Ok(role) => Ok(role),
        Err(error) => {
            tracing::warn!(server = server_label, peer = %peer_address, reason = %error, "handshake refused; closing the connection");
            metrics::counter!(names::HANDSHAKE_REJECTIONS, "server" => server_label, "reason" => error.reason_label())
                .increment(1);
            // After a `Welcome` the refusal is the exchange's own `AuthFrame::Refused`.
            if !matches!(error, HandshakeError::Auth(_)) {
                let refusal = HelloReply::Refused {
                    reason: error.to_string(),
                };
                // Best effort: the dialer may already be gone.
                let _ = tokio::time::timeout(timeout, codec::write_value(writer, &refusal)).await;
            }
            Err(error)
        }
    }
}

fn check_hello(hello: &Hello, policy: &HandshakePolicy) -> Result<DialerRole, HandshakeError> {
    if hello.protocol_version != codec::PROTOCOL_VERSION {
        return Err(HandshakeError::Version {
            theirs: hello.protocol_version,
            ours: codec::PROTOCOL_VERSION,
        });
    }
    if let Some(cluster) = &policy.cluster {
        if &hello.cluster != cluster {
            return Err(HandshakeError::Cluster {
                theirs: hello.cluster.clone(),
                ours: cluster.clone(),
            });
        }
    }
    if let (DialerRole::Master(theirs), Some((masters, own_id))) =
        (&hello.role, policy.accept_masters)
    {
        if *theirs >= masters || *theirs == own_id {
            return Err(HandshakeError::NodeId {
                theirs: *theirs,
                masters,
            });
        }
    }
    let accepted = match hello.role {
        DialerRole::Master(_) => policy.accept_masters.is_some(),
        DialerRole::Proxy => policy.accept_proxies,
        DialerRole::Client => policy.accept_clients,
    };
    if accepted {
        Ok(hello.role.clone())
    } else {
        Err(HandshakeError::Role(hello.role.clone()))
    }
}

/// Counts and logs a frame that could not be read; the caller then closes the connection.
pub fn record_bad_frame(server_label: &'static str, peer_address: SocketAddr, error: &CodecError) {
    tracing::warn!(server = server_label, peer = %peer_address, reason = %error, "bad frame; closing the connection");
    metrics::counter!(names::BAD_FRAMES, "server" => server_label, "reason" => error.reason_label())
        .increment(1);
}

/// How an outbound link dials and retries.
#[derive(Clone, Debug)]
pub struct LinkSettings {
    /// Messages waiting for the peer at most; beyond it new messages are dropped and counted.
    pub queue_messages_max: usize,
    /// Largest frame sent as a client (the largest request), and received during the
    /// handshake.
    pub frame_bytes_max: usize,
    /// Largest frame received after the handshake (the listener is the peer this side chose
    /// to dial), and sent as a master or proxy: a snapshot or a `Range` reply must fit.
    pub peer_frame_bytes_max: usize,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Reconnect delay cap.
    pub backoff_max: Duration,
    /// Time allowed for connect + handshake.
    pub connect_timeout: Duration,
    /// The cluster secret proved to the listener when dialing as a master or proxy.
    pub authentication: Authentication,
}

impl Default for LinkSettings {
    fn default() -> LinkSettings {
        LinkSettings {
            queue_messages_max: 1024,
            frame_bytes_max: codec::FRAME_BYTES_MAX_DEFAULT,
            peer_frame_bytes_max: codec::PEER_FRAME_BYTES_MAX_DEFAULT,
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            authentication: Authentication::Insecure,
        }
    }
}

/// Why a message was not queued to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The peer's queue is full (slow or unreachable peer): the message is dropped.
    #[error("peer queue full")]
    QueueFull,
    /// The link has shut down.
    #[error("link down")]
    LinkDown,
    /// The link has no connection to the peer right now (dialing, backing off): the message is
    /// dropped rather than delivered later, perhaps to the peer's next incarnation.
    #[error("peer not connected")]
    NotConnected,
}

/// The sending end of an outbound link: cheap to clone, never blocks.
#[derive(Debug)]
pub struct LinkSender<Out> {
    queue: mpsc::Sender<Out>,
    /// True while a connection is up. Held while queueing, and by the link while it changes
    /// connection and discards the queue, so nothing queued for one connection reaches the next.
    connected: Arc<Mutex<bool>>,
    reset: Arc<Notify>,
    /// Cancelled when the link's task has ended (its connection closed).
    finished: CancellationToken,
    /// Peer label for metrics and logs.
    peer: Arc<str>,
}

impl<Out> Clone for LinkSender<Out> {
    fn clone(&self) -> Self {
        LinkSender {
            queue: self.queue.clone(),
            connected: self.connected.clone(),
            reset: self.reset.clone(),
            finished: self.finished.clone(),
            peer: self.peer.clone(),
        }
    }
}

impl<Out> LinkSender<Out> {
    /// Queues `message` for the peer, or drops it (counted) if the link is not connected or
    /// its queue is full.
    pub fn send(&self, message: Out) -> Result<(), SendError> {
        let connected = self.connected.lock().unwrap_or_else(|p| p.into_inner());
        if !*connected {
            metrics::counter!(names::PEER_SEND_DROPS, "peer" => self.peer.to_string()).increment(1);
            return Err(SendError::NotConnected);
        }
        self.queue.try_send(message).map_err(|error| {
            let reason = match error {
                mpsc::error::TrySendError::Full(_) => SendError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => SendError::LinkDown,
            };
            metrics::counter!(names::PEER_SEND_DROPS, "peer" => self.peer.to_string()).increment(1);
            reason
        })
    }

    /// Closes the connection and discards everything still queued for it (an eviction,
    /// `protocol.md` §5.1). What was already written to the socket cannot be taken back: the
    /// peer may still read it, also after what the link sends on its next connection. The link
    /// then redials.
    pub fn reset(&self) {
        self.reset.notify_one();
    }

    /// Waits until the link's task has ended (after its shutdown token was cancelled): its
    /// connection is closed and nothing more is written on it. A stopped master waits for this
    /// so that nothing it queued reaches a peer once it has been restarted.
    pub async fn finished(&self) {
        self.finished.cancelled().await;
    }
}

/// What an outbound link reports to its owner through [`LinkInbound`].
#[derive(Debug)]
pub enum LinkEvent<In> {
    /// A value the peer sent back on the connection.
    Received(In),
    /// The connection ended (the peer closed it or died, a bad frame, a reset): whatever was
    /// sent on it and not yet answered will not be answered on it.
    Closed,
}

/// Where values read from an outbound link go: a shared channel, tagged with the link's index
/// so one receiver can serve many links (a proxy's links to every master of every cluster).
#[derive(Debug)]
pub struct LinkInbound<In> {
    /// The shared channel.
    pub sender: mpsc::Sender<(usize, LinkEvent<In>)>,
    /// This link's tag.
    pub tag: usize,
}

/// Spawns an outbound link to `address` over TCP: dials, says `hello`, then writes queued
/// messages. Values the peer sends back on this connection are decoded and delivered to
/// `inbound` (a proxy's replies from a master); a bad frame closes the connection and redials.
pub fn spawn_link<Out, In>(
    address: String,
    hello: Hello,
    settings: LinkSettings,
    inbound: Option<LinkInbound<In>>,
    shutdown: CancellationToken,
) -> LinkSender<Out>
where
    Out: Serialize + Send + Sync + 'static,
    In: DeserializeOwned + Send + 'static,
{
    spawn_link_on(TokioNetwork, address, hello, settings, inbound, shutdown)
}

/// [`spawn_link`] on `network`.
pub fn spawn_link_on<N, Out, In>(
    network: N,
    address: String,
    hello: Hello,
    settings: LinkSettings,
    inbound: Option<LinkInbound<In>>,
    shutdown: CancellationToken,
) -> LinkSender<Out>
where
    N: Network,
    Out: Serialize + Send + Sync + 'static,
    In: DeserializeOwned + Send + 'static,
{
    let (queue, receiver) = mpsc::channel(settings.queue_messages_max);
    let sender = LinkSender {
        queue,
        connected: Arc::new(Mutex::new(false)),
        finished: CancellationToken::new(),
        reset: Arc::new(Notify::new()),
        peer: Arc::from(address.as_str()),
    };
    let reset = sender.reset.clone();
    let connected = sender.connected.clone();
    let finished = sender.finished.clone();
    network.clone().spawn(async move {
        let _finished = finished.drop_guard();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {}
            _ = run_link(network, address, hello, settings, receiver, inbound, LinkState { reset, connected }) => {}
        }
    });
    sender
}

async fn run_link<N, Out, In>(
    network: N,
    address: String,
    hello: Hello,
    settings: LinkSettings,
    mut outbound: mpsc::Receiver<Out>,
    inbound: Option<LinkInbound<In>>,
    state: LinkState,
) where
    N: Network,
    Out: Serialize + Send + Sync + 'static,
    In: DeserializeOwned + Send + 'static,
{
    let LinkState { reset, connected } = state;
    let mut backoff = settings.backoff_initial;
    loop {
        let dialed = tokio::time::timeout(
            settings.connect_timeout,
            dial_on(&network, &address, &hello, &settings),
        )
        .await;
        match dialed {
            Ok(Ok((reader, writer))) => {
                backoff = settings.backoff_initial;
                set_connected(&connected, &mut outbound, true);
                tracing::debug!(peer = %address, "link connected");
                let ended = tokio::select! {
                    biased;
                    ended = serve_link(reader, writer, &mut outbound, inbound.as_ref()) => ended,
                    _ = reset.notified() => {
                        let discarded = set_connected(&connected, &mut outbound, false);
                        tracing::info!(peer = %address, discarded, "link closed on request; queue discarded");
                        false
                    }
                };
                if ended {
                    return; // every sender dropped: the owner is gone
                }
                // What was queued for the lost connection is lost with it, as what was in its
                // socket buffers is: a peer that crashed must not receive, once restarted,
                // what was sent to its previous incarnation (`protocol.md` §8: a crash loses
                // the messages in flight to the master). Paxos retries by its timers. The link
                // is marked down before the owner hears `Closed`, so every message the owner
                // queued and lost is one it queued before `Closed`, and a later send fails.
                let discarded = set_connected(&connected, &mut outbound, false);
                tracing::debug!(peer = %address, discarded, "link lost; queue discarded; reconnecting");
                if let Some(inbound) = &inbound {
                    if inbound
                        .sender
                        .send((inbound.tag, LinkEvent::Closed))
                        .await
                        .is_err()
                    {
                        return; // the owner is gone
                    }
                }
            }
            Ok(Err(error)) => {
                tracing::debug!(peer = %address, %error, "dial failed");
                metrics::counter!(names::RECONNECTS).increment(1);
            }
            Err(_) => metrics::counter!(names::RECONNECTS).increment(1),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(settings.backoff_max);
    }
}

/// What a link's task shares with its senders.
struct LinkState {
    /// Notified to close the connection (an eviction).
    reset: Arc<Notify>,
    /// Whether a connection is up (see [`LinkSender`]).
    connected: Arc<Mutex<bool>>,
}

/// Marks the link connected or not and empties its queue (nothing queued before a change of
/// connection is delivered on the next one); returns how many messages were discarded.
fn set_connected<Out>(
    connected: &Mutex<bool>,
    outbound: &mut mpsc::Receiver<Out>,
    now_connected: bool,
) -> u64 {
    let mut state = connected.lock().unwrap_or_else(|p| p.into_inner());
    let mut discarded = 0u64;
    while outbound.try_recv().is_ok() {
        discarded += 1;
    }
    *state = now_connected;
    discarded
}

/// Why dialing failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// TCP connect failed.
    #[error("connect: {0}")]
    Connect(#[from] std::io::Error),
    /// The handshake failed or was refused.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
}

/// Connects to `address` over TCP and performs the dialer's side of the handshake.
pub async fn dial(
    address: &str,
    hello: &Hello,
    settings: &LinkSettings,
) -> Result<
    (
        FrameReader<tokio::net::tcp::OwnedReadHalf>,
        FrameWriter<tokio::net::tcp::OwnedWriteHalf>,
    ),
    DialError,
> {
    dial_on(&TokioNetwork, address, hello, settings).await
}

/// [`dial`] on `network`.
pub async fn dial_on<N: Network>(
    network: &N,
    address: &str,
    hello: &Hello,
    settings: &LinkSettings,
) -> Result<(FrameReader<N::Reader>, FrameWriter<N::Writer>), DialError> {
    let (read_half, write_half) = N::split(network.connect(address).await?);
    let (mut reader, mut writer) = codec::framed(read_half, write_half, settings.frame_bytes_max);
    codec::write_value(&mut writer, hello)
        .await
        .map_err(HandshakeError::from)?;
    match codec::read_value::<HelloReply, _>(&mut reader).await {
        Ok(Some(HelloReply::Welcome)) => {
            if matches!(hello.role, DialerRole::Master(_) | DialerRole::Proxy) {
                let context = ExchangeContext {
                    cluster: &hello.cluster,
                    role: &hello.role,
                };
                let authenticated = auth::authenticate_to_listener(
                    &mut reader,
                    &mut writer,
                    &settings.authentication,
                    &context,
                )
                .await;
                if let Err(error) = authenticated {
                    tracing::warn!(peer = %address, %error, "authentication with the peer failed");
                    metrics::counter!(names::HANDSHAKE_REJECTIONS, "server" => "link", "reason" => "auth")
                        .increment(1);
                    return Err(HandshakeError::Auth(error).into());
                }
                codec::raise_write_limit(&mut writer, settings.peer_frame_bytes_max);
            }
            codec::raise_read_limit(&mut reader, settings.peer_frame_bytes_max);
            Ok((reader, writer))
        }
        Ok(Some(HelloReply::Refused { reason })) => {
            tracing::warn!(peer = %address, %reason, "handshake refused by the peer");
            Err(HandshakeError::Refused(reason).into())
        }
        Ok(None) => Err(HandshakeError::Closed.into()),
        Err(error) => Err(HandshakeError::BadFrame(error).into()),
    }
}

/// Writes queued messages and reads replies until the connection fails (returns false) or
/// every sender is gone (returns true).
async fn serve_link<R, W, Out, In>(
    mut reader: FrameReader<R>,
    mut writer: FrameWriter<W>,
    outbound: &mut mpsc::Receiver<Out>,
    inbound: Option<&LinkInbound<In>>,
) -> bool
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
    Out: Serialize,
    In: DeserializeOwned,
{
    /// Messages written before one flush: batches under load without unbounded buffering.
    const BATCH_MESSAGES_MAX: usize = 64;
    loop {
        tokio::select! {
            biased;
            message = outbound.recv() => {
                let Some(message) = message else { return true };
                if codec::feed_value(&mut writer, &message).await.is_err() {
                    return false;
                }
                let mut batched = 1;
                while batched < BATCH_MESSAGES_MAX {
                    let Ok(message) = outbound.try_recv() else { break };
                    if codec::feed_value(&mut writer, &message).await.is_err() {
                        return false;
                    }
                    batched += 1;
                }
                if codec::flush_values(&mut writer).await.is_err() {
                    return false;
                }
            }
            value = codec::read_value::<In, _>(&mut reader) => match (value, inbound) {
                (Ok(Some(value)), Some(inbound)) => {
                    if inbound.sender.send((inbound.tag, LinkEvent::Received(value))).await.is_err() {
                        return true;
                    }
                }
                (Ok(Some(_)), None) => {
                    tracing::warn!("unexpected frame on an outbound link; reconnecting");
                    return false;
                }
                (Ok(None), _) => return false,
                (Err(error), _) => {
                    tracing::warn!(%error, "bad frame on an outbound link; reconnecting");
                    metrics::counter!(names::BAD_FRAMES, "server" => "link", "reason" => error.reason_label()).increment(1);
                    return false;
                }
            }
        }
    }
}

//! Link faults and pauses through the host's `Network` seam: [`FaultyNetwork`] wraps the
//! network a master runs on (tokio TCP, or turmoil's), cuts what it sends on the links it
//! dials, and spawns every task of the master behind its [`PauseGate`].
//!
//! A cut link from this host to an address loses what the host sends there
//! (`docs/protocol.md` §11 `Drop`): a connection this host dialed to it breaks at its next
//! write (the write fails, and what the link had queued for it is lost with it), and dialing
//! it is refused until the cut is restored. A connection never outlives a cut, also a short
//! one: a byte stream that lost bytes in the middle could not be framed again, and a real
//! network that drops a connection's packets long enough makes its sender give up on it.
//! Only the direction dialed by this host is cut: masters send to each other on the links
//! each dials, so cutting one master's dial to another is a one-way cut, and both dials a
//! two-way one. Connections accepted by this host are never cut here.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use tokio::task::JoinHandle;
use vigil::platform::Network;

use crate::seams::pause::PauseGate;

/// The links one host's [`FaultyNetwork`] cuts, by the address dialed; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct LinkCuts {
    state: Arc<Mutex<BTreeMap<String, CutState>>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct CutState {
    cut: bool,
    /// Counts the cuts of this address: a connection dialed under an earlier count was cut.
    cuts: u64,
}

impl LinkCuts {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, CutState>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn state(&self, address: &str) -> CutState {
        self.lock().get(address).copied().unwrap_or_default()
    }

    /// Cuts (`true`) or restores (`false`) what this host sends to `address` (`host:port`,
    /// as the host dials it).
    pub fn set_cut(&self, address: &str, cut: bool) {
        let mut state = self.lock();
        let entry = state.entry(address.to_string()).or_default();
        if cut && !entry.cut {
            entry.cuts += 1;
        }
        entry.cut = cut;
    }

    /// Whether what this host sends to `address` is lost.
    pub fn is_cut(&self, address: &str) -> bool {
        self.state(address).cut
    }
}

/// One dialed connection's view of its link's cuts.
#[derive(Clone, Debug)]
struct DialedLink {
    cuts: LinkCuts,
    address: String,
    /// The cut count when the connection was dialed.
    cuts_at_dial: u64,
}

impl DialedLink {
    /// Whether the link was cut since this connection was dialed.
    fn was_cut(&self) -> bool {
        let state = self.cuts.state(&self.address);
        state.cut || state.cuts != self.cuts_at_dial
    }
}

/// `N` with this host's link cuts and pause gate.
#[derive(Clone, Debug)]
pub struct FaultyNetwork<N> {
    inner: N,
    cuts: LinkCuts,
    gate: PauseGate,
}

impl<N> FaultyNetwork<N> {
    /// `inner`, cut by `cuts` and paused by `gate`.
    pub fn new(inner: N, cuts: LinkCuts, gate: PauseGate) -> FaultyNetwork<N> {
        FaultyNetwork { inner, cuts, gate }
    }
}

/// A connection of [`FaultyNetwork`]: dialed ones know their link.
#[derive(Debug)]
pub struct FaultyStream<S> {
    inner: S,
    dialed: Option<DialedLink>,
}

/// The writing half of a [`FaultyStream`]: fails once its link was cut.
#[derive(Debug)]
pub struct FaultyWriter<W> {
    inner: W,
    dialed: Option<DialedLink>,
}

impl<W> FaultyWriter<W> {
    fn check(&self) -> io::Result<()> {
        match &self.dialed {
            Some(link) if link.was_cut() => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("link to {} cut (fault injection)", link.address),
            )),
            _ => Ok(()),
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for FaultyWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(context, buffer)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}

impl<N: Network> Network for FaultyNetwork<N> {
    type Listener = N::Listener;
    type Stream = FaultyStream<N::Stream>;
    type Reader = N::Reader;
    type Writer = FaultyWriter<N::Writer>;

    async fn connect(&self, address: &str) -> io::Result<Self::Stream> {
        let state = self.cuts.state(address);
        if state.cut {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("link to {address} cut (fault injection)"),
            ));
        }
        let inner = self.inner.connect(address).await?;
        let dialed = DialedLink {
            cuts: self.cuts.clone(),
            address: address.to_string(),
            cuts_at_dial: state.cuts,
        };
        Ok(FaultyStream {
            inner,
            dialed: Some(dialed),
        })
    }

    async fn accept(listener: &N::Listener) -> io::Result<(Self::Stream, SocketAddr)> {
        let (inner, address) = N::accept(listener).await?;
        Ok((
            FaultyStream {
                inner,
                dialed: None,
            },
            address,
        ))
    }

    fn split(stream: Self::Stream) -> (N::Reader, Self::Writer) {
        let (reader, writer) = N::split(stream.inner);
        let writer = FaultyWriter {
            inner: writer,
            dialed: stream.dialed,
        };
        (reader, writer)
    }

    /// Behind the host's gate: a paused host's tasks are not polled.
    fn spawn<T>(&self, task: T) -> JoinHandle<T::Output>
    where
        T: Future + Send + 'static,
        T::Output: Send + 'static,
    {
        self.inner.spawn(self.gate.wrap(task))
    }
}

//! The network and the disk the host runs on: tokio TCP and `std::fs` in production, a
//! simulation (turmoil's network and file system, `conformance/src/turmoil_host/platform.rs`) in
//! conformance.
//!
//! Why a seam this small: the same master, proxy, transport, storage and client code must run
//! under a deterministic simulation with simulated time, network faults and crashes, or the
//! simulation proves nothing about the code that ships. Everything else the host needs is
//! already simulation-friendly: time goes only through `tokio::time` (which a simulation drives),
//! every `select!` is `biased`, and the only random numbers (the authentication nonces) change
//! bytes, never lengths or timing. What differs is where bytes go (a socket or a simulated
//! link), where files live (a real disk or a simulated one that loses unsynced writes on a
//! crash), how blocking disk work runs (a tokio blocking thread, or inline in the simulation's
//! single thread so that the run stays deterministic), and where tasks are spawned.
//!
//! Why spawning is part of the seam: a crashed host's tasks are dropped all at once, and each
//! dropped connection sends its close to the peers, so the order of the drops is the order of
//! those sends (and of the simulated latencies drawn for them). `tokio::spawn` puts a task in
//! one of its runtime's sharded task lists by the task's id, and task ids come from one counter
//! of the whole process, so the order of the drops changes from one run to the next in the
//! same process (it made two runs of one seed differ after a crash). The simulation spawns on
//! its host's `LocalSet` instead: one list, dropped in a fixed order.

use std::future::Future;
use std::io::{self, Read, Seek, Write};
use std::net::SocketAddr;
use std::path::Path;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Where connections come from and go to.
pub trait Network: Clone + Send + Sync + 'static {
    /// A bound listener.
    type Listener: Send + Sync + 'static;
    /// A connection, as accepted or dialed.
    type Stream: Send + 'static;
    /// The reading half of a connection.
    type Reader: AsyncRead + Unpin + Send + 'static;
    /// The writing half of a connection.
    type Writer: AsyncWrite + Unpin + Send + 'static;

    /// Connects to `address` (`host:port`).
    fn connect(&self, address: &str) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Waits for the next connection on `listener`.
    fn accept(
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// Splits a connection into halves that can be read and written by different tasks.
    fn split(stream: Self::Stream) -> (Self::Reader, Self::Writer);

    /// Starts `task` on this host's runtime (every task the host spawns goes through here).
    /// It takes `&self` so that a platform may keep state per host (a simulation that freezes
    /// one host's tasks).
    fn spawn<T>(&self, task: T) -> JoinHandle<T::Output>
    where
        T: Future + Send + 'static,
        T::Output: Send + 'static;
}

/// Tokio TCP with `TCP_NODELAY` on every connection (what the `vigil` binary runs on).
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioNetwork;

impl Network for TokioNetwork {
    type Listener = TcpListener;
    type Stream = TcpStream;
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;

    async fn connect(&self, address: &str) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, address) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, address))
    }

    fn split(stream: TcpStream) -> (OwnedReadHalf, OwnedWriteHalf) {
        stream.into_split()
    }

    fn spawn<T>(&self, task: T) -> JoinHandle<T::Output>
    where
        T: Future + Send + 'static,
        T::Output: Send + 'static,
    {
        tokio::spawn(task)
    }
}

/// A file of [`FileSystem`]: what `crate::storage` reads, appends, truncates and syncs.
pub trait StorageFile: Read + Write + Seek + Send + 'static {
    /// Truncates or extends the file to `bytes`.
    fn set_len(&self, bytes: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Makes the file's data and metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
}

/// The file operations `crate::storage` needs, and how its blocking work is run.
pub trait FileSystem: Clone + Send + Sync + 'static {
    /// An open file.
    type File: StorageFile;

    /// Creates `path` and its parents if needed.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Opens `path` for reading and appending, creating it if needed.
    fn open_append(&self, path: &Path) -> io::Result<Self::File>;
    /// Creates (or truncates) `path` for writing.
    fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Reads the whole of `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (files created, renamed, removed in it) durable.
    fn sync_directory(&self, path: &Path) -> io::Result<()>;

    /// Runs blocking disk work (`work`) without blocking the async tasks: on a tokio blocking
    /// thread for a real disk; inline for a simulated one (one thread, deterministic).
    fn run_blocking<T, W>(&self, work: W) -> impl Future<Output = T> + Send
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static;
}

/// `std::fs` on the real disk (what the `vigil` binary runs on).
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFileSystem;

impl StorageFile for std::fs::File {
    fn set_len(&self, bytes: u64) -> io::Result<()> {
        std::fs::File::set_len(self, bytes)
    }
    fn sync_data(&self) -> io::Result<()> {
        std::fs::File::sync_data(self)
    }
    fn sync_all(&self) -> io::Result<()> {
        std::fs::File::sync_all(self)
    }
}

impl FileSystem for StdFileSystem {
    type File = std::fs::File;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn open_append(&self, path: &Path) -> io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
    }
    fn create(&self, path: &Path) -> io::Result<std::fs::File> {
        std::fs::File::create(path)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn sync_directory(&self, path: &Path) -> io::Result<()> {
        std::fs::File::open(path).and_then(|handle| handle.sync_all())
    }

    async fn run_blocking<T, W>(&self, work: W) -> T
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
    {
        match tokio::task::spawn_blocking(work).await {
            Ok(value) => value,
            // The work panicked: let the panic reach the task that asked for it.
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // The runtime is shutting down, and this task with it.
            Err(_) => std::future::pending().await,
        }
    }
}

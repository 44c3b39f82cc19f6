//! The platform the tokio host runs on under turmoil (`vigil::platform`): turmoil's simulated
//! TCP, and its simulated disk under the host's real storage code.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::Path;

use turmoil::fs::shim::std::fs as sim_fs;
use vigil::platform::{FileSystem, Network, StorageFile};

/// turmoil's network for the host: every connection a simulated TCP stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimNetwork;

impl Network for SimNetwork {
    type Listener = turmoil::net::TcpListener;
    type Stream = turmoil::net::TcpStream;
    type Reader = turmoil::net::tcp::OwnedReadHalf;
    type Writer = turmoil::net::tcp::OwnedWriteHalf;

    async fn connect(&self, address: &str) -> io::Result<turmoil::net::TcpStream> {
        turmoil::net::TcpStream::connect(address).await
    }

    async fn accept(
        listener: &turmoil::net::TcpListener,
    ) -> io::Result<(turmoil::net::TcpStream, SocketAddr)> {
        listener.accept().await
    }

    fn split(
        stream: turmoil::net::TcpStream,
    ) -> (
        turmoil::net::tcp::OwnedReadHalf,
        turmoil::net::tcp::OwnedWriteHalf,
    ) {
        stream.into_split()
    }

    /// On the host's `LocalSet` (turmoil runs every host's software in one): a crash drops
    /// its tasks in a fixed order, where `tokio::spawn`'s sharded task list would drop them
    /// in an order set by process-wide task ids (`vigil::platform`).
    fn spawn<T>(&self, task: T) -> tokio::task::JoinHandle<T::Output>
    where
        T: std::future::Future + Send + 'static,
        T::Output: Send + 'static,
    {
        tokio::task::spawn_local(task)
    }
}

/// turmoil's simulated disk (one per host): writes are pending until synced, a crash loses
/// what is pending, a file whose directory entry was never synced disappears.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimFileSystem;

/// A file on [`SimFileSystem`].
#[derive(Debug)]
pub struct SimFile(sim_fs::File);

impl Read for SimFile {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.0.read(buffer)
    }
}

impl Write for SimFile {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        self.0.write(buffer)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Seek for SimFile {
    fn seek(&mut self, position: SeekFrom) -> io::Result<u64> {
        self.0.seek(position)
    }
}

impl StorageFile for SimFile {
    fn set_len(&self, bytes: u64) -> io::Result<()> {
        self.0.set_len(bytes)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
}

impl FileSystem for SimFileSystem {
    type File = SimFile;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        sim_fs::create_dir_all(path)
    }
    fn open_append(&self, path: &Path) -> io::Result<SimFile> {
        sim_fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map(SimFile)
    }
    fn create(&self, path: &Path) -> io::Result<SimFile> {
        sim_fs::File::create(path).map(SimFile)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        sim_fs::read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        sim_fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        sim_fs::remove_file(path)
    }
    fn sync_directory(&self, path: &Path) -> io::Result<()> {
        sim_fs::sync_dir(path)
    }

    /// Inline: the simulation is one thread, and a thread of its own would make it
    /// nondeterministic (and could not reach the simulated disk).
    async fn run_blocking<T, W>(&self, work: W) -> T
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
    {
        work()
    }
}

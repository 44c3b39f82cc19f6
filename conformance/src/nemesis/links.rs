//! Cuttable links between masters: one TCP forwarder on 127.0.0.1 per ordered pair of masters.
//! Master `i`'s config lists, for each peer `j`, the forwarder `i → j` instead of `j`'s own
//! address, so every byte `i` sends `j` passes through the harness; the proxy dials the masters
//! directly.
//!
//! Why forwarders rather than a control endpoint in the master: cutting a master off is then a
//! fault of the network, not a mode of the program under test — the masters run unmodified, a
//! cut link closes their connections and refuses redials exactly as a partition with resets
//! would, and nothing new listens inside `vigil`. Loopback only, bounded: at most
//! [`CONNECTIONS_PER_LINK_MAX`] live connections per link.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use super::NemesisError;

/// Live connections one link carries at most (a master keeps one per peer; redials replace it).
pub const CONNECTIONS_PER_LINK_MAX: usize = 8;

/// One directed link `from → to`.
#[derive(Debug)]
struct Link {
    from: usize,
    to: usize,
    address: SocketAddr,
    cut: Arc<AtomicBool>,
    /// Bumped on every cut: connections alive at a cut end.
    generation: watch::Sender<u64>,
    task: JoinHandle<()>,
}

/// Every link between `masters` masters.
#[derive(Debug)]
pub struct Links {
    links: Vec<Link>,
}

impl Links {
    /// Binds a forwarder for every ordered pair; `targets[j]` is master `j`'s real address.
    pub async fn start(targets: &[SocketAddr]) -> Result<Links, NemesisError> {
        let mut links = Vec::new();
        for from in 0..targets.len() {
            for (to, target) in targets.iter().enumerate() {
                if from == to {
                    continue;
                }
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(NemesisError::io("binding a link"))?;
                let address = listener
                    .local_addr()
                    .map_err(NemesisError::io("binding a link"))?;
                let cut = Arc::new(AtomicBool::new(false));
                let (generation, _) = watch::channel(0);
                let task = tokio::spawn(forward(
                    listener,
                    *target,
                    cut.clone(),
                    generation.subscribe(),
                ));
                links.push(Link {
                    from,
                    to,
                    address,
                    cut,
                    generation,
                    task,
                });
            }
        }
        Ok(Links { links })
    }

    /// The address master `from` dials to reach master `to`.
    pub fn address(&self, from: usize, to: usize) -> Option<SocketAddr> {
        self.links
            .iter()
            .find(|link| link.from == from && link.to == to)
            .map(|link| link.address)
    }

    /// Cuts (or heals) every link to and from `node`. Cutting closes the live connections.
    pub fn isolate(&self, node: usize, cut: bool) {
        for link in self
            .links
            .iter()
            .filter(|link| link.from == node || link.to == node)
        {
            link.cut.store(cut, Ordering::SeqCst);
            if cut {
                link.generation.send_modify(|generation| *generation += 1);
            }
        }
    }

    /// Heals every link.
    pub fn heal_all(&self) {
        for link in &self.links {
            link.cut.store(false, Ordering::SeqCst);
        }
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        for link in &self.links {
            link.task.abort();
        }
    }
}

async fn forward(
    listener: TcpListener,
    target: SocketAddr,
    cut: Arc<AtomicBool>,
    generation: watch::Receiver<u64>,
) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS_PER_LINK_MAX));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            // Out of descriptors or similar: wait rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        if cut.load(Ordering::SeqCst) {
            drop(inbound); // refused: the dialer sees a reset and backs off
            continue;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(inbound);
            continue;
        };
        let mut generation = generation.clone();
        generation.mark_unchanged();
        connections.spawn(async move {
            let _permit = permit;
            let Ok(outbound) = TcpStream::connect(target).await else {
                return;
            };
            let (mut inbound, mut outbound) = (inbound, outbound);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = generation.changed() => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_cut_link_closes_and_refuses_and_a_healed_one_carries() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 64];
                    while let Ok(read) = stream.read(&mut buffer).await {
                        if read == 0 || stream.write_all(&buffer[..read]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let other = free_target().await;
        let links = Links::start(&[other, target]).await.unwrap();
        let through = links.address(0, 1).unwrap();
        let mut stream = TcpStream::connect(through).await.unwrap();
        stream.write_all(b"ping").await.unwrap();
        let mut answer = [0u8; 4];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"ping");

        links.isolate(1, true);
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut rest),
        )
        .await
        .expect("a cut closes the live connection");
        assert!(read.is_err() || rest.is_empty());
        let mut refused = TcpStream::connect(through).await.unwrap();
        let mut byte = [0u8; 1];
        let read = refused.read(&mut byte).await;
        assert!(matches!(read, Ok(0) | Err(_)), "a cut link refuses");

        links.isolate(1, false);
        let mut stream = TcpStream::connect(through).await.unwrap();
        stream.write_all(b"pong").await.unwrap();
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"pong");
    }

    async fn free_target() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
    }
}

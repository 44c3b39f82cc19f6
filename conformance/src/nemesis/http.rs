//! `GET /status` of a master or of the proxy (`docs/operations.md` §2), over a plain TCP
//! connection: the endpoint answers one request per connection and closes, so reading to the
//! end of the stream is the whole response. Bounded by a deadline and a size cap.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_core::{LedgerCounters, MasterStatus};

/// Bytes of a response read at most.
const RESPONSE_BYTES_MAX: u64 = 1 << 20;

/// The proxy's `/status` (the fields the nemesis reads).
#[derive(Clone, Debug, Deserialize)]
pub struct ProxyStatus {
    /// The request ledger.
    pub ledger: LedgerCounters,
}

/// The body of a `200 OK` answer to `GET path`, or `None` (refused, timed out, not 200).
pub async fn get(address: SocketAddr, path: &str, timeout: Duration) -> Option<String> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream
            .take(RESPONSE_BYTES_MAX)
            .read_to_end(&mut response)
            .await
            .ok()?;
        let text = String::from_utf8(response).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_string())
    };
    tokio::time::timeout(timeout, exchange).await.ok().flatten()
}

/// A master's status, if it answers within `timeout`.
pub async fn master_status(address: SocketAddr, timeout: Duration) -> Option<MasterStatus> {
    let body = get(address, "/status", timeout).await?;
    serde_json::from_str(&body).ok()
}

/// The proxy's status, if it answers within `timeout`.
pub async fn proxy_status(address: SocketAddr, timeout: Duration) -> Option<ProxyStatus> {
    let body = get(address, "/status", timeout).await?;
    serde_json::from_str(&body).ok()
}

//! `GET /status` of a master or of the proxy (`docs/operations.md` §2), over a plain TCP
//! connection: the endpoint answers one request per connection and closes, so reading to the
//! end of the stream is the whole response. Bounded by a deadline and a size cap.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_core::{LedgerCounters, MasterStatus};

use crate::TestkitError;

/// Bytes of an HTTP answer read at most (`/status` is well under a kilobyte).
const RESPONSE_BYTES_MAX: u64 = 1 << 20;

/// The proxy's `/status` (the fields the harnesses read).
#[derive(Clone, Debug, Deserialize)]
pub struct ProxyStatus {
    /// The request ledger.
    pub ledger: LedgerCounters,
}

/// The body of `GET path` on `address` (HTTP/1.1, one request per connection), within
/// `timeout`; anything but `200 OK` is an error.
pub async fn http_get(
    address: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<String, TestkitError> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream
            .take(RESPONSE_BYTES_MAX)
            .read_to_end(&mut response)
            .await?;
        Ok::<_, std::io::Error>(response)
    };
    let failed = |why: String| TestkitError::Http(format!("GET {address}{path}: {why}"));
    let response = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| failed(format!("no answer in {timeout:?}")))?
        .map_err(|error| failed(error.to_string()))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| failed("no HTTP header end".to_string()))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(failed(head.lines().next().unwrap_or_default().to_string()));
    }
    Ok(body.to_string())
}

/// A master's status from its own endpoint `http`, within `timeout`.
pub async fn master_status(
    http: SocketAddr,
    timeout: Duration,
) -> Result<MasterStatus, TestkitError> {
    let body = http_get(http, "/status", timeout).await?;
    serde_json::from_str(&body)
        .map_err(|error| TestkitError::Http(format!("{http}/status of a master: {error}")))
}

/// The proxy's status from its endpoint `http`, within `timeout`.
pub async fn proxy_status(
    http: SocketAddr,
    timeout: Duration,
) -> Result<ProxyStatus, TestkitError> {
    let body = http_get(http, "/status", timeout).await?;
    serde_json::from_str(&body)
        .map_err(|error| TestkitError::Http(format!("{http}/status of the proxy: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves one connection with `response` after reading the request's head.
    async fn serve_once(response: &'static str) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = vec![0u8; 1024];
            let _ = stream.read(&mut head).await;
            stream.write_all(response.as_bytes()).await.unwrap();
        });
        address
    }

    #[tokio::test]
    async fn the_body_of_a_200_answer_is_returned() {
        let address = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        let body = http_get(address, "/status", Duration::from_secs(10)).await;
        assert_eq!(body.unwrap(), "ok");
    }

    #[tokio::test]
    async fn another_status_is_an_error_naming_it() {
        let address = serve_once("HTTP/1.1 404 Not Found\r\n\r\n").await;
        let error = http_get(address, "/status", Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("404 Not Found"), "{error}");
    }
}

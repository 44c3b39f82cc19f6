//! `vigil::client`: the Rust client the CLI, tests and benchmarks use to talk to a proxy.
//!
//! Why one library: every consumer then exercises the same handshake, framing and error
//! mapping, so a test passing through `Client` says something about what `vigil put` does.
//! A client may pipeline (`send_request` many times, then `next_reply`); the proxy answers each
//! request exactly once, in completion order, matched by `request_id`.
//!
//! The revisioned API (`docs/protocol.md` §14–§17) goes through the same connection:
//! [`Client::kv_call`] for `Range`, `Put`, `DeleteRange`, `Txn` and `Compact`, and
//! [`Client::create_watch`] then [`Client::next_watch_frame`] for a watch's stream, which has
//! no deadline (a watch may stay idle for as long as nothing changes).

use std::collections::HashMap;
use std::time::Duration;

use vigil_core::kv_types::{KvOperation, KvReplyOutcome, WatchId, WatchRequest};
use vigil_core::{Operation, OperationResult, ReplyOutcome, RequestId};

use crate::auth::Token;
use crate::codec::{self, CodecError, DialerRole, FrameReader, FrameWriter, Hello};
use crate::platform::{Network, TokioNetwork};
use crate::transport::{self, DialError, LinkSettings};
use crate::wire::{ClientFrame, ClusterStatus, ProxyFrame};

/// What can go wrong between a client and its proxy (not the outcome of an operation).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Connecting or the handshake failed.
    #[error("connecting to the proxy: {0}")]
    Dial(#[from] DialError),
    /// The connection failed or sent something unreadable.
    #[error("connection to the proxy: {0}")]
    Connection(#[from] CodecError),
    /// The proxy closed the connection.
    #[error("the proxy closed the connection")]
    Closed,
    /// No answer within the client's timeout.
    #[error("no answer from the proxy within {0:?}")]
    Timeout(Duration),
    /// The proxy answered something that does not match what was asked.
    #[error("unexpected answer from the proxy: {0}")]
    Unexpected(String),
    /// The proxy refused a status query.
    #[error("{0}")]
    Status(String),
}

/// A connection to a proxy (over TCP unless built with [`Client::connect_on`]).
#[derive(Debug)]
pub struct Client<N: Network = TokioNetwork> {
    reader: FrameReader<N::Reader>,
    writer: FrameWriter<N::Writer>,
    next_request_id: RequestId,
    timeout: Duration,
    /// Cluster name → the token presented with each request to it (`docs/security.md`).
    tokens: HashMap<String, Token>,
}

impl Client {
    /// Connects to the proxy at `address` (`host:port`); calls time out after `timeout`.
    pub async fn connect(address: &str, timeout: Duration) -> Result<Client, CallError> {
        Client::connect_on(TokioNetwork, address, timeout).await
    }
}

impl<N: Network> Client<N> {
    /// [`Client::connect`] on `network`.
    pub async fn connect_on(
        network: N,
        address: &str,
        timeout: Duration,
    ) -> Result<Client<N>, CallError> {
        let hello = Hello {
            protocol_version: codec::PROTOCOL_VERSION,
            cluster: String::new(),
            role: DialerRole::Client,
        };
        let settings = LinkSettings::default();
        let (reader, writer) = tokio::time::timeout(
            timeout,
            transport::dial_on(&network, address, &hello, &settings),
        )
        .await
        .map_err(|_| CallError::Timeout(timeout))??;
        Ok(Client {
            reader,
            writer,
            next_request_id: 1,
            timeout,
            tokens: HashMap::new(),
        })
    }

    /// Presents `token` with every later request and status query to `cluster`.
    pub fn set_token(&mut self, cluster: &str, token: Token) {
        self.tokens.insert(cluster.to_string(), token);
    }

    /// Sends a request without waiting for its reply; returns its id.
    pub async fn send_request(
        &mut self,
        cluster: &str,
        operation: Operation,
    ) -> Result<RequestId, CallError> {
        let (request_id, token) = self.next_request(cluster);
        let frame = ClientFrame::Request {
            request_id,
            cluster: cluster.to_string(),
            operation,
            token,
        };
        codec::write_value(&mut self.writer, &frame).await?;
        Ok(request_id)
    }

    /// A fresh request id (one space for both APIs) and the token held for `cluster`.
    fn next_request(&mut self, cluster: &str) -> (RequestId, Option<Token>) {
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        (request_id, self.tokens.get(cluster).cloned())
    }

    /// Waits for the next reply, whichever request it answers.
    pub async fn next_reply(&mut self) -> Result<(RequestId, ReplyOutcome), CallError> {
        match self.next_frame().await? {
            ProxyFrame::Reply {
                request_id,
                outcome,
            } => Ok((request_id, outcome)),
            other => Err(CallError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Sends one request and waits for its reply.
    pub async fn call(
        &mut self,
        cluster: &str,
        operation: Operation,
    ) -> Result<ReplyOutcome, CallError> {
        let request_id = self.send_request(cluster, operation).await?;
        let (answered, outcome) = self.next_reply().await?;
        if answered != request_id {
            return Err(CallError::Unexpected(format!(
                "reply to request {answered}, expected {request_id}"
            )));
        }
        Ok(outcome)
    }

    /// `Put`.
    pub async fn put(
        &mut self,
        cluster: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<ReplyOutcome, CallError> {
        let operation = Operation::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        };
        self.call(cluster, operation).await
    }

    /// `Get`.
    pub async fn get(&mut self, cluster: &str, key: &[u8]) -> Result<ReplyOutcome, CallError> {
        self.call(cluster, Operation::Get { key: key.to_vec() })
            .await
    }

    /// `Cas` on `expected_version`.
    pub async fn cas(
        &mut self,
        cluster: &str,
        key: &[u8],
        expected_version: u64,
        value: &[u8],
    ) -> Result<ReplyOutcome, CallError> {
        let operation = Operation::Cas {
            key: key.to_vec(),
            expected_version,
            value: value.to_vec(),
        };
        self.call(cluster, operation).await
    }

    /// `Delete`.
    pub async fn delete(&mut self, cluster: &str, key: &[u8]) -> Result<ReplyOutcome, CallError> {
        self.call(cluster, Operation::Delete { key: key.to_vec() })
            .await
    }

    /// Sends a revisioned request without waiting for its reply; returns its id (from the same
    /// space as [`Client::send_request`]'s).
    pub async fn send_kv_request(
        &mut self,
        cluster: &str,
        operation: KvOperation,
    ) -> Result<RequestId, CallError> {
        let (request_id, token) = self.next_request(cluster);
        let frame = ClientFrame::KvRequest {
            request_id,
            cluster: cluster.to_string(),
            operation,
            token,
        };
        codec::write_value(&mut self.writer, &frame).await?;
        Ok(request_id)
    }

    /// Sends one revisioned request and waits for its reply. Do not call with a watch open on
    /// this connection (its frames would come first); use another connection.
    pub async fn kv_call(
        &mut self,
        cluster: &str,
        operation: KvOperation,
    ) -> Result<KvReplyOutcome, CallError> {
        let request_id = self.send_kv_request(cluster, operation).await?;
        match self.next_frame().await? {
            ProxyFrame::KvReply {
                request_id: answered,
                outcome,
            } if answered == request_id => Ok(outcome),
            other => Err(CallError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Asks for a watch named `watch_id` (unique among this connection's open watches); its
    /// `WatchCreated` or `WatchEnded`, then its events, come from [`Client::next_watch_frame`].
    pub async fn create_watch(
        &mut self,
        cluster: &str,
        watch_id: WatchId,
        watch: WatchRequest,
    ) -> Result<(), CallError> {
        let frame = ClientFrame::WatchCreate {
            watch_id,
            cluster: cluster.to_string(),
            watch,
            token: self.tokens.get(cluster).cloned(),
        };
        Ok(codec::write_value(&mut self.writer, &frame).await?)
    }

    /// Cancels watch `watch_id`: it ends `Cancelled` (a `WatchEnded` follows) unless it
    /// already ended.
    pub async fn cancel_watch(&mut self, watch_id: WatchId) -> Result<(), CallError> {
        let frame = ClientFrame::WatchCancel { watch_id };
        Ok(codec::write_value(&mut self.writer, &frame).await?)
    }

    /// Asks for a `WatchProgress` of watch `watch_id`.
    pub async fn request_watch_progress(&mut self, watch_id: WatchId) -> Result<(), CallError> {
        let frame = ClientFrame::WatchProgressRequest { watch_id };
        Ok(codec::write_value(&mut self.writer, &frame).await?)
    }

    /// The next frame of any watch of this connection (or a reply), waiting as long as it
    /// takes: a watch's next event may be far off.
    pub async fn next_watch_frame(&mut self) -> Result<ProxyFrame, CallError> {
        match codec::read_value(&mut self.reader).await {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err(CallError::Closed),
            Err(error) => Err(error.into()),
        }
    }

    /// The cluster's masters and the proxy's ledger. Do not call with requests outstanding.
    pub async fn status(&mut self, cluster: &str) -> Result<ClusterStatus, CallError> {
        let query_id = 1;
        let frame = ClientFrame::StatusQuery {
            query_id,
            cluster: cluster.to_string(),
            token: self.tokens.get(cluster).cloned(),
        };
        codec::write_value(&mut self.writer, &frame).await?;
        match self.next_frame().await? {
            ProxyFrame::Status { result, .. } => result.map_err(CallError::Status),
            other => Err(CallError::Unexpected(format!("{other:?}"))),
        }
    }

    /// The next frame, within the client's timeout.
    pub async fn next_frame(&mut self) -> Result<ProxyFrame, CallError> {
        let read = tokio::time::timeout(self.timeout, codec::read_value(&mut self.reader));
        match read.await {
            Err(_) => Err(CallError::Timeout(self.timeout)),
            Ok(Ok(Some(frame))) => Ok(frame),
            Ok(Ok(None)) => Err(CallError::Closed),
            Ok(Err(error)) => Err(error.into()),
        }
    }
}

/// One line for a result, as the CLI prints it.
pub fn describe_result(result: &OperationResult) -> String {
    match result {
        OperationResult::Value {
            value: Some(value),
            version,
        } => format!("{} (version {version})", String::from_utf8_lossy(value)),
        OperationResult::Value {
            value: None,
            version,
        } => format!("(absent) (version {version})"),
        OperationResult::Written { version } => format!("written (version {version})"),
        OperationResult::VersionMismatch { current_version } => {
            format!("version mismatch (current version {current_version})")
        }
        OperationResult::Deleted { version: 0 } => "deleted (key was absent)".to_string(),
        OperationResult::Deleted { version } => format!("deleted (version {version})"),
    }
}

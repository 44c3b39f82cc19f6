//! The HTTP endpoint on `metrics_listen`: `GET /metrics` (Prometheus text) and `GET /status`
//! (JSON: a master's `MasterStatus`, or a proxy's ledger counters and cached leaders), 404 for
//! any other path, 405 for any other method (`docs/operations.md` §2).
//!
//! HTTP/1.1 is hyper's; this module only routes. Bounded like the protocol servers: at most
//! [`HTTP_CONNECTIONS_MAX`] connections (the accept loop waits beyond it), one request per
//! connection, and a deadline on each connection so a silent client cannot hold a permit.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_core::{LedgerCounters, NodeId, WatchLedgerCounters};

use crate::master::StatusQuery;
use crate::metrics::MetricsError;
use crate::platform::TokioNetwork;
use crate::proxy::LedgerView;
use crate::transport::{self, ServerLimits};

/// Open HTTP connections at most; a scraper and an operator or two need a handful.
pub const HTTP_CONNECTIONS_MAX: usize = 16;
/// Time a client has to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time one connection may take in all (request, status query, response).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the master's driver has to answer a status query (it answers between inputs).
const STATUS_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Where `/status` comes from.
#[derive(Clone, Debug)]
pub enum StatusSource {
    /// A master: its core's `MasterStatus`, asked from its driver task.
    Master(StatusQuery),
    /// A proxy: its published ledger counters and cached leaders.
    Proxy(Arc<LedgerView>),
    /// Nothing to report (`vigil cluster`: several masters and a proxy share one endpoint);
    /// `/status` answers 404.
    None,
}

/// `/status` of a proxy.
#[derive(Debug, Serialize)]
pub struct ProxyStatus {
    /// The request ledger (`accepted = completed_ok + completed_err + in_flight`).
    pub ledger: LedgerCounters,
    /// Cluster name → the master the proxy currently sends that cluster's requests to
    /// (`null`: not known yet).
    pub leaders: BTreeMap<String, Option<NodeId>>,
    /// The watch ledger (`opened = ended + open`, `dropped_unended` 0).
    pub watches: WatchLedgerCounters,
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The Prometheus recorder could not be installed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The address could not be bound.
    #[error("metrics_listen: binding {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
}

/// The endpoint bound, with the process's recorder installed, before it serves: a taken port
/// fails the start before the master or proxy runs, and the status source can come later.
#[derive(Debug)]
pub struct HttpEndpoint {
    listener: TcpListener,
    metrics: PrometheusHandle,
}

impl HttpEndpoint {
    /// Installs the Prometheus recorder (once per process) and binds `address`.
    pub async fn bind(address: SocketAddr) -> Result<HttpEndpoint, HttpError> {
        let metrics = crate::metrics::install_recorder()?;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| HttpError::Bind { address, source })?;
        Ok(HttpEndpoint { listener, metrics })
    }

    /// The bound address (port 0 resolved).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves in a task of its own until `shutdown` is cancelled.
    pub fn spawn(self, source: StatusSource, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(serve(self.listener, self.metrics, source, shutdown))
    }
}

/// What every connection shares.
struct Context {
    metrics: PrometheusHandle,
    source: StatusSource,
}

/// Serves `/metrics` and `/status` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    metrics: PrometheusHandle,
    source: StatusSource,
    shutdown: CancellationToken,
) {
    let context = Arc::new(Context { metrics, source });
    let limits = ServerLimits {
        connections_max: HTTP_CONNECTIONS_MAX,
        ..ServerLimits::default()
    };
    transport::accept_connections(
        TokioNetwork,
        listener,
        limits,
        shutdown,
        "http",
        move |stream, _| serve_connection(stream, context.clone()),
    )
    .await;
}

async fn serve_connection(stream: TcpStream, context: Arc<Context>) {
    let service = service_fn(move |request| {
        let context = context.clone();
        async move { Ok::<_, Infallible>(respond(&context, &request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(%error, "http connection failed"),
        Err(_) => tracing::debug!("http connection timed out"),
    }
}

async fn respond(context: &Context, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match request.uri().path() {
        "/metrics" => with_type(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            context.metrics.render(),
        ),
        "/status" => status(&context.source).await,
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: try /metrics or /status\n",
        ),
    }
}

async fn status(source: &StatusSource) -> Response<Full<Bytes>> {
    let body = match source {
        StatusSource::Master(query) => {
            match tokio::time::timeout(STATUS_QUERY_TIMEOUT, query.status()).await {
                Ok(Some(status)) => serde_json::to_string(&status),
                Ok(None) => return plain(StatusCode::SERVICE_UNAVAILABLE, "master stopped\n"),
                Err(_) => {
                    return plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "master did not answer in time\n",
                    )
                }
            }
        }
        StatusSource::Proxy(ledger) => serde_json::to_string(&ProxyStatus {
            ledger: ledger.counters(),
            leaders: ledger.leaders(),
            watches: ledger.watch_counters(),
        }),
        StatusSource::None => return plain(StatusCode::NOT_FOUND, "no status here\n"),
    };
    match body {
        Ok(body) => with_type(StatusCode::OK, "application/json", body + "\n"),
        Err(error) => plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error}\n")),
    }
}

fn plain(code: StatusCode, text: &str) -> Response<Full<Bytes>> {
    with_type(code, "text/plain; charset=utf-8", text.to_string())
}

fn with_type(code: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

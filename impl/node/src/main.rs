//! `vigil`: the coordination service's command line — run masters and proxies (one per process
//! from config files, or all in one process with `vigil cluster`), and talk to a proxy as a
//! client (`put`, `get`, `cas`, `delete`, `status`, and the revisioned `range`,
//! `delete-range`, `txn`, `watch`, `compact` in `cli_kv.rs`). The subcommand names are a
//! contract used by the docs and checks.

mod cli_kv;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use vigil::auth::Token;
use vigil::client::{describe_result, Client};
use vigil::cluster::{ClusterOptions, LocalCluster};
use vigil::config::{MasterConfig, ProxyConfig};
use vigil::master::{self, MasterSettings};
use vigil::proxy::{self, LedgerView, ProxySettings};
use vigil::status::{HttpEndpoint, StatusSource};
use vigil_core::{Operation, ReplyOutcome};

#[derive(Parser, Debug)]
#[command(
    name = "vigil",
    version,
    about = "A Paxos coordination service: masters, proxy, client"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// N masters and one proxy in this process on loopback (cluster `local`), until Ctrl-C.
    Cluster {
        /// Number of masters.
        #[arg(long, default_value_t = 5)]
        masters: usize,
        /// Data directory (default: a fresh temporary directory, removed on exit).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where the proxy listens.
        #[arg(long, default_value = "127.0.0.1:7400")]
        proxy_listen: SocketAddr,
        /// Where Prometheus metrics are served on `/metrics` (none by default).
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
        /// Write trace events (NDJSON, one file per master and one for the proxy) here.
        #[arg(long)]
        trace_dir: Option<PathBuf>,
    },
    /// One master, from a config file.
    Master {
        /// TOML config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// One proxy, from a config file.
    Proxy {
        /// TOML config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Write a key (with --prev-kv: the revisioned put, printing its revision and the record
    /// it replaced).
    Put {
        #[command(flatten)]
        target: KeyValueArguments,
        /// Print the write's revision and the key's previous record.
        #[arg(long)]
        prev_kv: bool,
    },
    /// Read a key.
    Get(KeyArguments),
    /// Write a key only if its version is `--version`.
    Cas {
        #[command(flatten)]
        target: KeyValueArguments,
        /// The version the key must have (0: never written).
        #[arg(long)]
        version: u64,
    },
    /// Remove a key.
    Delete(KeyArguments),
    /// Leader, ballot, commit index, active and evicted masters, and the proxy's ledger.
    Status(Target),
    /// Read a key, a range [KEY, RANGE_END) or a prefix, at the current or a past revision.
    Range(cli_kv::RangeCommand),
    /// Remove a key, a range or a prefix (one revision for all).
    DeleteRange(cli_kv::DeleteRangeCommand),
    /// Compare, then run the success or the failure operations, atomically at one revision.
    Txn(cli_kv::TxnCommand),
    /// Print every change of a key, a range or a prefix, in revision order, until Ctrl-C.
    Watch(cli_kv::WatchCommand),
    /// Drop the history below REVISION (reads and watches below it fail `compacted`).
    Compact {
        #[command(flatten)]
        target: Target,
        /// The new compaction point.
        revision: u64,
    },
}

#[derive(clap::Args, Debug)]
struct Target {
    /// The proxy's address.
    #[arg(long)]
    proxy: String,
    /// The cluster's name.
    #[arg(long)]
    cluster: String,
    /// How long to wait for an answer, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// A file holding the cluster's client token (else the VIGIL_CLIENT_TOKEN environment
    /// variable, else none). Never the token itself: arguments show in `ps`.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

/// The environment variable a client reads its token from when no `--token-file` is given.
const CLIENT_TOKEN_ENV: &str = "VIGIL_CLIENT_TOKEN";

impl Target {
    async fn connect(&self) -> anyhow::Result<Client> {
        let timeout = Duration::from_millis(self.timeout_ms);
        let mut client = Client::connect(&self.proxy, timeout).await?;
        let token = match &self.token_file {
            Some(path) => Some(
                std::fs::read(path).with_context(|| format!("token file {}", path.display()))?,
            ),
            None => std::env::var(CLIENT_TOKEN_ENV).ok().map(String::into_bytes),
        };
        if let Some(token) = token {
            client.set_token(&self.cluster, Token::from_bytes(&token));
        }
        Ok(client)
    }
}

#[derive(clap::Args, Debug)]
struct KeyArguments {
    #[command(flatten)]
    target: Target,
    /// The key.
    key: String,
}

#[derive(clap::Args, Debug)]
struct KeyValueArguments {
    #[command(flatten)]
    target: Target,
    /// The key.
    key: String,
    /// The value.
    value: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vigil: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vigil: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause its parent already quoted.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Cluster {
            masters,
            data_dir,
            proxy_listen,
            metrics_listen,
            trace_dir,
        } => {
            let options = ClusterOptions {
                proxy_listen,
                trace_dir,
                ..ClusterOptions::local(masters, PathBuf::new())
            };
            run_cluster(options, data_dir, metrics_listen).await
        }
        Command::Master { config } => run_master(config).await,
        Command::Proxy { config } => run_proxy(config).await,
        Command::Put {
            target: arguments,
            prev_kv: true,
        } => {
            cli_kv::run_put_with_previous(&arguments.target, &arguments.key, &arguments.value).await
        }
        Command::Put {
            target: arguments,
            prev_kv: false,
        } => {
            let operation = Operation::Put {
                key: arguments.key.into_bytes(),
                value: arguments.value.into_bytes(),
            };
            run_operation(&arguments.target, operation).await
        }
        Command::Get(arguments) => {
            let operation = Operation::Get {
                key: arguments.key.into_bytes(),
            };
            run_operation(&arguments.target, operation).await
        }
        Command::Cas { target, version } => {
            let operation = Operation::Cas {
                key: target.key.into_bytes(),
                expected_version: version,
                value: target.value.into_bytes(),
            };
            run_operation(&target.target, operation).await
        }
        Command::Delete(arguments) => {
            let operation = Operation::Delete {
                key: arguments.key.into_bytes(),
            };
            run_operation(&arguments.target, operation).await
        }
        Command::Status(target) => run_status(&target).await,
        Command::Range(command) => cli_kv::run_range(command).await,
        Command::DeleteRange(command) => cli_kv::run_delete_range(command).await,
        Command::Txn(command) => cli_kv::run_txn(command).await,
        Command::Watch(command) => cli_kv::run_watch(command).await,
        Command::Compact { target, revision } => cli_kv::run_compact(&target, revision).await,
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn termination() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

async fn run_cluster(
    mut options: ClusterOptions,
    data_dir: Option<PathBuf>,
    metrics_listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let masters = options.masters;
    if masters == 0 {
        bail!("--masters must be at least 1");
    }
    // One endpoint for N masters and a proxy: `/metrics` only (`/status` answers 404).
    let http_shutdown = CancellationToken::new();
    let _stop_http = http_shutdown.clone().drop_guard();
    if let Some(address) = metrics_listen {
        HttpEndpoint::bind(address)
            .await?
            .spawn(StatusSource::None, http_shutdown.clone());
    }
    let temporary = match &data_dir {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("creating a temporary data directory")?),
    };
    let data_dir =
        data_dir.unwrap_or_else(|| temporary.as_ref().expect("set above").path().to_path_buf());
    options.data_dir = data_dir.clone();
    if let Some(trace_dir) = &options.trace_dir {
        std::fs::create_dir_all(trace_dir)
            .with_context(|| format!("creating {}", trace_dir.display()))?;
    }
    let cluster = LocalCluster::start(options).await?;
    println!(
        "cluster {} with {masters} masters; data in {}",
        cluster.name(),
        data_dir.display()
    );
    for (node, address) in cluster.master_addresses().iter().enumerate() {
        println!("master {node}: {address}");
    }
    println!("proxy: {}", cluster.proxy_address());
    println!(
        "try: vigil put --proxy {} --cluster {} greeting hello",
        cluster.proxy_address(),
        cluster.name()
    );
    termination().await;
    tracing::info!("shutting down");
    cluster.shutdown().await?;
    Ok(())
}

async fn run_master(path: PathBuf) -> anyhow::Result<()> {
    let config = MasterConfig::load(&path).with_context(|| format!("config {}", path.display()))?;
    let settings = MasterSettings::from_config(&config)
        .with_context(|| format!("config {}", path.display()))?;
    let http = match config.metrics_listen {
        Some(address) => Some(HttpEndpoint::bind(address).await?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listen: binding {}", config.listen))?;
    let shutdown = CancellationToken::new();
    let handle = master::spawn(listener, settings, shutdown.clone())?;
    if let Some(http) = http {
        http.spawn(
            StatusSource::Master(handle.status_query()),
            shutdown.child_token(),
        );
    }
    println!(
        "master {} of cluster {} listening on {}",
        config.node_id, config.cluster, handle.address
    );
    tokio::select! {
        _ = termination() => {}
        _ = wait_finished(&handle) => {}
    }
    handle.stop().await?;
    Ok(())
}

async fn wait_finished(handle: &master::MasterHandle) {
    while !handle.is_finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run_proxy(path: PathBuf) -> anyhow::Result<()> {
    let config = ProxyConfig::load(&path).with_context(|| format!("config {}", path.display()))?;
    let settings = ProxySettings::from_config(&config)
        .with_context(|| format!("config {}", path.display()))?;
    let http = match config.metrics_listen {
        Some(address) => Some(HttpEndpoint::bind(address).await?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listen: binding {}", config.listen))?;
    println!("proxy listening on {}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let ledger = Arc::new(LedgerView::default());
    if let Some(http) = http {
        http.spawn(StatusSource::Proxy(ledger.clone()), shutdown.child_token());
    }
    let task = tokio::spawn(proxy::run(listener, settings, shutdown.clone(), ledger));
    termination().await;
    shutdown.cancel();
    task.await.context("proxy task")??;
    Ok(())
}

async fn run_operation(target: &Target, operation: Operation) -> anyhow::Result<()> {
    let mut client = target.connect().await?;
    match client.call(&target.cluster, operation).await? {
        ReplyOutcome::Ok(vigil_core::OperationResult::VersionMismatch { current_version }) => {
            bail!("version mismatch: the key's current version is {current_version}")
        }
        ReplyOutcome::Ok(result) => {
            println!("{}", describe_result(&result));
            Ok(())
        }
        ReplyOutcome::Err(error) => bail!("{}", describe_error(&target.cluster, &error)),
    }
}

fn describe_error(cluster: &str, error: &vigil_core::ClientError) -> String {
    use vigil_core::ClientError;
    match error {
        ClientError::UnknownCluster => {
            format!("unknown cluster {cluster:?} (the proxy does not serve it)")
        }
        ClientError::Overloaded => {
            "overloaded: the proxy or the leader is at its limit; retry later".into()
        }
        ClientError::NoLeader => format!("no leader: cluster {cluster:?} has no reachable leader"),
        ClientError::Timeout => {
            "timeout: no answer in time; the operation may or may not have been applied".into()
        }
        ClientError::LeaderChanged => {
            "leader changed: the operation may or may not have been applied".into()
        }
        ClientError::PermissionDenied => format!(
            "permission denied: the client token for cluster {cluster:?} is missing or wrong \
             (--token-file or VIGIL_CLIENT_TOKEN)"
        ),
        ClientError::InvalidRequest => "invalid request: a transaction with more compares or \
             operations per branch than txn_operations_max, or putting one key twice"
            .into(),
    }
}

async fn run_status(target: &Target) -> anyhow::Result<()> {
    let mut client = target.connect().await?;
    let status = client.status(&target.cluster).await?;
    let leader = status
        .masters
        .iter()
        .flatten()
        .find(|master| master.role == vigil_core::Role::Leader);
    println!("cluster: {}", status.cluster);
    match leader {
        Some(leader) => {
            let ballot = leader.leader.unwrap_or(leader.promised);
            println!("leader: master {} (ballot {ballot})", leader.id);
            println!("commit_index: {}", leader.commit_index);
            println!("active: {:?}", leader.active);
            println!("evicted: {:?}", leader.evicted);
        }
        None => println!("leader: none"),
    }
    for (node, master) in status.masters.iter().enumerate() {
        match master {
            Ok(master) => println!(
                "master {node}: {} promised={} commit_index={} last_slot={}",
                master.role, master.promised, master.commit_index, master.last_slot
            ),
            Err(reason) => println!("master {node}: {reason}"),
        }
    }
    let ledger = status.ledger;
    println!(
        "ledger: accepted={} completed_ok={} completed_err={} in_flight={} late_replies={} dropped_unanswered={}",
        ledger.accepted, ledger.completed_ok, ledger.completed_err, ledger.in_flight, ledger.late_replies, ledger.dropped_unanswered
    );
    Ok(())
}

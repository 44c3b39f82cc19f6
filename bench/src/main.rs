//! `vigil-bench`: measures vigil against etcd, the incident, failure handling, model checking
//! beside stateright's Paxos example and trace replay (`docs/benchmarks.md`), and prints
//! Markdown tables. It exits non-zero if a section FAILED (a SKIPPED one does not fail the run).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use vigil_bench::{BenchOptions, SectionName};

#[derive(Parser, Debug)]
#[command(
    name = "vigil-bench",
    version,
    about = "Measure the service against etcd, the incident, failures, model checking and replay \
             (docs/benchmarks.md); prints Markdown tables"
)]
struct Arguments {
    /// Small durations and counts (under two minutes; CI's smoke run, figures not for quoting).
    #[arg(long)]
    quick: bool,
    /// Run only this section (repeatable; default: all).
    #[arg(long = "section", value_enum)]
    sections: Vec<SectionName>,
    /// Concurrent closed-loop clients (default 16, quick 8).
    #[arg(long)]
    clients: Option<usize>,
    /// Parent directory of the benchmark's data directories (default: the temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vigil-bench: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(arguments)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vigil-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines (the client library's warnings, for one) on stderr; stdout is the report.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run(arguments: Arguments) -> anyhow::Result<()> {
    let vigil = vigil_testkit::vigil_binary::locate().context("the vigil executable")?;
    let mut options = if arguments.quick {
        BenchOptions::quick(vigil)
    } else {
        BenchOptions::full(vigil)
    };
    if let Some(clients) = arguments.clients {
        if !(1..=1024).contains(&clients) {
            bail!("--clients must be 1..=1024, not {clients}");
        }
        options.clients = clients;
    }
    options.only = arguments.sections;
    options.work_dir = arguments.work_dir;
    let sections = vigil_bench::run(&options).await;
    if !vigil_bench::all_passed(&sections) {
        bail!("a benchmark section FAILED (see above)");
    }
    Ok(())
}

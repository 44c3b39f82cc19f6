//! `vigil-bench`: every figure of `docs/benchmarks.md`, measured in one invocation on this
//! machine, side by side with the alternative — etcd for the service, stateright's own Paxos
//! example for the model checker — and printed as Markdown tables with the machine and the date.
//!
//! Sections: service throughput and latency (vigil as real `vigil master`/`vigil proxy`
//! processes vs etcd members, same closed-loop generator), the revisioned API (range by
//! prefix, a two-key transaction, watch fan-out, beside etcd), the incident (a wrong-cluster flood
//! while valid traffic runs), failure handling (SIGSTOP, SIGCONT, SIGKILL on real processes),
//! model checking, and trace replay. `--quick` runs every section with small durations and
//! counts (under two minutes) so CI keeps the code working; its figures are not meant to be
//! quoted. Every duration and count is bounded, every child process is killed by PID when its
//! section ends (`vigil_testkit::Children`), and everything binds 127.0.0.1.
//!
//! A crate of its own so that the service does not carry it: `vigil` depends on none of the
//! model, stateright, the histogram or the etcd client that the benchmark needs. The masters
//! and proxies it measures are the `vigil` executable as shipped
//! (`vigil_testkit::vigil_binary`).

pub mod failure;
pub mod fan_out;
pub mod incident;
pub mod load;
pub mod report;
pub mod revisions;
pub mod throughput;
pub mod verification;
pub mod vigil_cluster;

#[cfg(feature = "etcd")]
pub mod etcd;

use std::path::PathBuf;
use std::time::Duration;

use report::{Section, SectionOutcome};

/// What can stop a benchmark section.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Starting, watching or stopping a child process failed.
    #[error(transparent)]
    Processes(#[from] vigil_testkit::TestkitError),
    /// Setting up or observing the system under test failed.
    #[error("{0}")]
    Setup(String),
    /// The load generator failed (a connection broke).
    #[error("load: {0}")]
    Load(String),
    /// A measured command failed or printed something unexpected.
    #[error("{0}")]
    Command(String),
}

/// Why a section's etcd half has no figures.
#[derive(Debug)]
pub enum EtcdOutcome {
    /// etcd is not there (no `etcd` on PATH, or a build without the `etcd` feature): the
    /// section says SKIPPED for it and goes on.
    Skipped(String),
    /// etcd was there and failed: the section fails.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    Failed(BenchError),
}

/// The skip reason of a build without the `etcd` cargo feature.
pub const WITHOUT_ETCD: &str = "this vigil-bench was built without the `etcd` cargo feature (cargo run --release -p vigil-bench --features etcd)";

/// The settings of one `vigil-bench` invocation.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The `vigil` executable the masters and proxies run.
    pub vigil: PathBuf,
    /// Small durations and counts (CI); figures not for quoting.
    pub quick: bool,
    /// Concurrent closed-loop clients of the throughput and incident sections.
    pub clients: usize,
    /// Warm-up before each measured window.
    pub warmup: Duration,
    /// Each measured window of the throughput section.
    pub duration: Duration,
    /// The wrong-cluster flood of the incident section.
    pub flood_duration: Duration,
    /// Repetitions of each failure-handling measurement.
    pub failure_trials: usize,
    /// Clients of stateright's Paxos example.
    pub paxos_clients: usize,
    /// The vigil-model preset checked.
    pub model_preset: String,
    /// Simulated conformance runs replayed (each ~12,000 events).
    pub replay_seeds: u64,
    /// Sections to run (all when empty).
    pub only: Vec<SectionName>,
    /// Parent of the benchmark's data directories (default: the system's temporary directory).
    pub work_dir: Option<PathBuf>,
}

/// A section of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SectionName {
    /// Service throughput and latency, vigil and etcd.
    Throughput,
    /// Range by prefix, a two-key Txn and watch fan-out, vigil and etcd.
    Revisions,
    /// The wrong-cluster flood under load.
    Incident,
    /// SIGSTOP/SIGCONT of a follower, SIGKILL of the leader.
    Failure,
    /// vigil-model's `ci` preset beside stateright's Paxos example.
    Model,
    /// Trace replay of simulated runs.
    Replay,
}

impl BenchOptions {
    /// The full benchmark (about 20 minutes on 2 cores), starting `vigil`.
    pub fn full(vigil: PathBuf) -> BenchOptions {
        BenchOptions {
            vigil,
            quick: false,
            clients: 16,
            warmup: Duration::from_secs(5),
            duration: Duration::from_secs(20),
            flood_duration: Duration::from_secs(60),
            failure_trials: 3,
            paxos_clients: 3,
            model_preset: "ci".to_string(),
            replay_seeds: 100,
            only: Vec::new(),
            work_dir: None,
        }
    }

    /// The CI smoke run (under two minutes once built), starting `vigil`.
    pub fn quick(vigil: PathBuf) -> BenchOptions {
        BenchOptions {
            vigil,
            quick: true,
            clients: 8,
            warmup: Duration::from_millis(500),
            duration: Duration::from_secs(2),
            flood_duration: Duration::from_secs(4),
            failure_trials: 1,
            paxos_clients: 2,
            model_preset: "ci-pause".to_string(),
            replay_seeds: 4,
            only: Vec::new(),
            work_dir: None,
        }
    }

    fn runs(&self, section: SectionName) -> bool {
        self.only.is_empty() || self.only.contains(&section)
    }

    fn temporary_directory(&self, label: &str) -> Result<tempfile::TempDir, BenchError> {
        let prefix = format!("vigil-bench-{label}-");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix);
        let made = match &self.work_dir {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        };
        made.map_err(|error| BenchError::Setup(format!("creating a data directory: {error}")))
    }
}

/// Runs the selected sections, printing each as it completes; returns every section's outcome.
pub async fn run(options: &BenchOptions) -> Vec<Section> {
    println!("{}", report::machine_header(options));
    let mut sections = Vec::new();
    let mut record = |section: Section| {
        println!("{section}");
        sections.push(section);
    };
    if options.runs(SectionName::Throughput) {
        record(throughput::run(options).await);
    }
    if options.runs(SectionName::Revisions) {
        record(revisions::run(options).await);
    }
    if options.runs(SectionName::Incident) {
        record(incident::run(options).await);
    }
    if options.runs(SectionName::Failure) {
        record(failure::run(options).await);
    }
    if options.runs(SectionName::Model) {
        record(verification::model_checking(options).await);
    }
    if options.runs(SectionName::Replay) {
        record(verification::replay(options).await);
    }
    sections
}

/// Whether no section failed (skipped sections do not fail a run).
pub fn all_passed(sections: &[Section]) -> bool {
    sections
        .iter()
        .all(|section| !matches!(section.outcome, SectionOutcome::Failed(_)))
}

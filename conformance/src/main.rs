//! `vigil-conform`: the project's main job. `verify` (the default) model-checks the `ci`
//! preset, runs the implementation under faults, replays its traces against the model and
//! prints one summary table; `run` runs and validates; `check` validates traces recorded
//! elsewhere; `nemesis` runs real `vigil` processes under SIGSTOP, SIGKILL, partitions and a
//! wrong-cluster flood and checks the clients' history (`docs/reliability.md`). Exit status 1 on
//! any failure, with the first divergence's report; 141 (as if killed by SIGPIPE), quietly, when
//! the reader of its output goes away (`vigil-conform check … | head`).
//!
//! The binary parses arguments, prints and sets the exit status; what runs is the library's
//! (`verify.rs`, `part.rs`, `run.rs`, `check.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use vigil_conformance::check::{self, CheckFailure};
use vigil_conformance::diagram;
use vigil_conformance::evidence::{self, SavedEvidence};
use vigil_conformance::faults::{self, FaultKind, Runner};
use vigil_conformance::nemesis;
use vigil_conformance::part::{self, PartPlan, PartResult, Progress, RegressionSeed};
use vigil_conformance::planted;
use vigil_conformance::replay::{
    LINEARIZABLE_CHECK_LIMIT, WHOLE_STORE_CHECK_LIMIT, WHOLE_STORE_MEMO_ENTRIES_MAX,
};
use vigil_conformance::trace;
use vigil_conformance::verify::{self, VerifyOptions};
use vigil_core::{Mutation, Mutations};

/// `print!` to stdout that survives a reader going away (see [`write_stdout`]).
macro_rules! out {
    ($($argument:tt)*) => {
        write_stdout(format_args!($($argument)*))
    };
}

/// `println!` to stdout that survives a reader going away (see [`write_stdout`]).
macro_rules! outln {
    () => {
        write_stdout(format_args!("\n"))
    };
    ($($argument:tt)*) => {
        write_stdout(format_args!("{}\n", format_args!($($argument)*)))
    };
}

/// The exit status of a program killed by SIGPIPE (128 + 13), which `vigil-conform` takes when
/// its reader went away: what a shell shows for other tools cut short by `| head`.
const BROKEN_PIPE_EXIT_STATUS: i32 = 141;

/// What writing to stdout came to.
#[derive(Debug, PartialEq, Eq)]
enum Written {
    /// Written (or buffered).
    Done,
    /// The reader closed the pipe (`vigil-conform check … | head`): nobody reads the rest.
    ReaderGone,
}

/// Writes `arguments` to `writer`; a closed pipe is an outcome, any other error is returned.
fn write_to(
    writer: &mut impl Write,
    arguments: std::fmt::Arguments<'_>,
) -> std::io::Result<Written> {
    match writer.write_fmt(arguments) {
        Ok(()) => Ok(Written::Done),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(Written::ReaderGone),
        Err(error) => Err(error),
    }
}

/// Writes to stdout. `print!` panics when the reader has gone away; here the program ends
/// quietly with [`BROKEN_PIPE_EXIT_STATUS`] instead, and on any other write error with a
/// message and status 1.
fn write_stdout(arguments: std::fmt::Arguments<'_>) {
    match write_to(&mut std::io::stdout().lock(), arguments) {
        Ok(Written::Done) => {}
        Ok(Written::ReaderGone) => std::process::exit(BROKEN_PIPE_EXIT_STATUS),
        Err(error) => {
            eprintln!("vigil-conform: writing to stdout: {error}");
            std::process::exit(1)
        }
    }
}

/// TCP runs (real time, ~10 s each) of `run --mode all`.
const TCP_SEEDS_IN_ALL: u64 = 2;

/// Command line of `vigil-conform`.
#[derive(Debug, Parser)]
#[command(
    name = "vigil-conform",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `verify`'s options, when no command is given.
    #[command(flatten)]
    verify: VerifyArgs,
}

/// What `verify` runs (the defaults are the CI job).
#[derive(Clone, Debug, clap::Args)]
struct VerifyArgs {
    /// The model-check preset (`ci`, or one of its members for a quick look).
    #[arg(long, default_value = verify::PRESET_DEFAULT)]
    preset: String,
    /// Seeds of the core simulation.
    #[arg(long, alias = "seeds", default_value_t = verify::SIM_SEEDS_DEFAULT)]
    sim_seeds: u64,
    /// Seeds of the tokio host under turmoil.
    #[arg(long, default_value_t = verify::TURMOIL_SEEDS_DEFAULT)]
    turmoil_seeds: u64,
    /// Real-TCP runs, each with one fault kind of `--tcp-faults` in turn (0: none; default:
    /// one per kind that TCP injects).
    #[arg(long)]
    tcp_runs: Option<u64>,
    /// The real-TCP runs' fault kinds (`all`, `none` or a list).
    #[arg(long, default_value = verify::TCP_FAULTS_DEFAULT)]
    tcp_faults: String,
}

/// Which runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Deterministic simulation of the core's masters and proxy.
    Sim,
    /// Deterministic simulation of the tokio host (turmoil: simulated network, clock, disk).
    Turmoil,
    /// The tokio host on real TCP (127.0.0.1).
    Tcp,
    /// All three (`both` is accepted for it).
    #[value(alias = "both")]
    All,
}

/// What to do; `verify` when none is given.
#[derive(Debug, Subcommand)]
enum Command {
    /// Model-check the `ci` preset, run the implementation against the model, print a summary.
    Verify(VerifyArgs),
    /// Run the implementation under faults and validate its traces against the model.
    Run(RunArgs),
    /// Validate traces recorded elsewhere: trace files, or directories of `*.ndjson`.
    Check {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Fewer events than this in total fail as vacuous.
        #[arg(long, default_value_t = trace::EVENTS_FLOOR_DEFAULT)]
        floor: usize,
        /// Replay the traces this many times (a stable replay-rate measurement).
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Where a divergence's model path and diagram go; default: the traces' directory when
        /// one directory is checked, else a new `vigil-divergence-check-*` temporary directory.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run 5 `vigil master` processes and a `vigil proxy` under a nemesis (SIGSTOP of a
    /// follower and of the leader, SIGKILL and restart, the leader cut off, a wrong-cluster
    /// flood) with concurrent clients; check linearizability, durability, traces, the proxy's
    /// ledger and memory.
    Nemesis {
        /// The `vigil` binary (default: `vigil` next to this program).
        #[arg(long)]
        vigil: Option<PathBuf>,
        /// Time budget of the fault schedule, seconds (the heal and checks come after).
        #[arg(long, default_value_t = 75)]
        duration: u64,
        /// Concurrent clients.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Keys the clients share.
        #[arg(long, default_value_t = 3)]
        keys: usize,
        /// Transaction clients moving money between accounts with `Txn`s (0: none, and no
        /// watchers). The trace check replays a 60 s run with them in about 20 s on 2 cores, half
        /// of it the whole-store linearizability check's time limit.
        #[arg(long, default_value_t = 0)]
        txn_clients: usize,
        /// Watchers on the accounts' prefix.
        #[arg(long, default_value_t = 2)]
        watchers: usize,
        /// Accounts (at least 2).
        #[arg(long, default_value_t = 3)]
        accounts: usize,
        /// The money the accounts hold between them.
        #[arg(long, default_value_t = 60)]
        total: u64,
        /// Wrong-cluster requests per flood.
        #[arg(long, default_value_t = 20_000)]
        flood_requests: u64,
        /// Configs, data, traces and logs (default: a temporary directory, removed after a
        /// passing run and kept after a failing one).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Run without trace files and skip the trace check (it replays every event: minutes
        /// for a 75 s run on 2 cores).
        #[arg(long)]
        no_trace_check: bool,
    },
}

/// What `run` runs.
#[derive(Clone, Debug, clap::Args)]
struct RunArgs {
    /// Number of seeds (runs per mode).
    #[arg(long, default_value_t = verify::SIM_SEEDS_DEFAULT)]
    seeds: u64,
    /// Which runs.
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// `all`, `none` or a comma-separated list of: drop, partition, pause, pause-leader,
    /// crash, wrong-cluster, timeout, overload, stale-ack, slow-disk,
    /// reproposal.
    #[arg(long, default_value = "all")]
    faults: String,
    /// The first seed (runs use seed, seed + 1, ...).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write each run's traces under this directory.
    #[arg(long)]
    trace_dir: Option<PathBuf>,
    /// Plant this bug of the core in every run (repeatable; the model's names:
    /// error-path-leak, double-complete, evicted-ack-counts, forget-promise,
    /// stale-leader-read, read-before-own-ballot-commit, own-accept-before-persist). Needs
    /// a build with the cargo feature `mutations` (`docs/trace.md` §7).
    #[arg(long = "mutation", value_name = "NAME")]
    mutations: Vec<Mutation>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ok = match cli.command.unwrap_or(Command::Verify(cli.verify)) {
        Command::Verify(arguments) => verify(&arguments),
        Command::Run(arguments) => run(&arguments),
        Command::Check {
            paths,
            floor,
            repeat,
            out,
        } => check(&paths, floor, repeat, out.as_deref()),
        Command::Nemesis {
            vigil,
            duration,
            clients,
            keys,
            txn_clients,
            watchers,
            accounts,
            total,
            flood_requests,
            dir,
            no_trace_check,
        } => nemesis(NemesisArguments {
            vigil,
            duration,
            clients,
            keys,
            txn_clients,
            watchers,
            accounts,
            total,
            flood_requests,
            dir,
            check_traces: !no_trace_check,
        }),
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn verify(arguments: &VerifyArgs) -> bool {
    outln!("vigil-conform verify");
    let tcp_faults = match faults::parse_fault_list(&arguments.tcp_faults) {
        Ok(kinds) => kinds,
        Err(error) => {
            eprintln!("vigil-conform: {error}");
            return false;
        }
    };
    let options = VerifyOptions {
        preset: arguments.preset.clone(),
        sim_seeds: arguments.sim_seeds,
        turmoil_seeds: arguments.turmoil_seeds,
        tcp_runs: arguments.tcp_runs,
        tcp_faults,
    };
    let (model_check, failed_suite) = verify::model_check(&options.preset);
    if let Some(suite) = failed_suite {
        out!("{suite}");
    }
    let mut parts = vec![model_check];
    parts.extend(run_parts(&verify::runner_parts(&options)));
    print_table("verify", &parts)
}

fn run(arguments: &RunArgs) -> bool {
    let kinds = match faults::parse_fault_list(&arguments.faults) {
        Ok(kinds) => kinds,
        Err(error) => {
            eprintln!("vigil-conform: {error}");
            return false;
        }
    };
    if !plant(&arguments.mutations) {
        return false;
    }
    let plans = run_plans(arguments, &kinds);
    print_table("vigil-conform run", &run_parts(&plans))
}

/// The parts `run` runs: one per runner of `--mode`, `--seeds` seeds each (TCP's capped at
/// [`TCP_SEEDS_IN_ALL`] when all three run).
fn run_plans(arguments: &RunArgs, kinds: &[FaultKind]) -> Vec<PartPlan> {
    let runners: &[Runner] = match arguments.mode {
        Mode::Sim => &[Runner::CoreSimulation],
        Mode::Turmoil => &[Runner::Turmoil],
        Mode::Tcp => &[Runner::Tcp],
        Mode::All => &Runner::ALL,
    };
    runners
        .iter()
        .map(|runner| {
            let seeds = if arguments.mode == Mode::All && *runner == Runner::Tcp {
                arguments.seeds.min(TCP_SEEDS_IN_ALL)
            } else {
                arguments.seeds
            };
            let mut plan = PartPlan::seeds(*runner, verify::MASTERS, arguments.seed, seeds, kinds);
            plan.trace_directory.clone_from(&arguments.trace_dir);
            plan
        })
        .collect()
}

/// Runs `plans` in turn, printing what they find.
fn run_parts(plans: &[PartPlan]) -> Vec<PartResult> {
    plans
        .iter()
        .map(|plan| part::run_part(plan, &mut print_progress))
        .collect()
}

/// Prints what a part found on the way.
fn print_progress(progress: Progress<'_>) {
    match progress {
        Progress::Undecided { run, keys } => note_undecided(run, keys),
        Progress::TracesNotKept { directory, error } => {
            eprintln!(
                "vigil-conform: writing traces to {}: {error}",
                directory.display()
            );
        }
        Progress::Failed { run, faults } => outln!("{run}: faults {}", faults.join("; ")),
        Progress::Shrunk {
            run,
            faults,
            smallest,
            title,
        } => {
            let shrunk: Vec<String> = smallest.faults.iter().map(ToString::to_string).collect();
            outln!(
                "{run} shrunk to {} of {faults} faults, still diverging ({title}): [{}]",
                smallest.faults.len(),
                shrunk.join("; ")
            );
        }
        Progress::Regression(RegressionSeed::Saved(path)) => {
            outln!("  regression seed saved to {}", path.display());
        }
        Progress::Regression(RegressionSeed::Planted) => {
            outln!("  not saved as a regression seed: this run plants bugs");
        }
        Progress::Regression(RegressionSeed::Failed(error)) => {
            eprintln!("vigil-conform: saving the regression seed: {error}");
        }
        Progress::Failure { failure, evidence } => print_failure(failure, evidence),
        Progress::Coverage(coverage) => out!("{coverage}"),
    }
}

/// Says so when a run's linearizability check left keys undecided (never counted as passed).
fn note_undecided(run: &str, keys: &[String]) {
    outln!(
        "note: {run}: linearizability UNKNOWN for keys {}: not decided (the per-key check within {} s, the whole store within {} s and {} memo entries)",
        keys.join(", "),
        LINEARIZABLE_CHECK_LIMIT.as_secs(),
        WHOLE_STORE_CHECK_LIMIT.as_secs(),
        WHOLE_STORE_MEMO_ENTRIES_MAX
    );
}

/// Prints a failure, and where a divergence's model path (for `vigil_model::check::replay`
/// and the explorer) and sequence diagram went (`docs/trace.md` §5).
fn print_failure(failure: &CheckFailure, evidence: Option<&SavedEvidence>) {
    outln!("{failure}");
    let Some(evidence) = evidence else {
        return;
    };
    match &evidence.model_path {
        Ok(path) => outln!(
            "  model path ({} actions) saved to {}",
            evidence.actions,
            path.display()
        ),
        Err((path, error)) => outln!("  model path not saved ({}): {error}", path.display()),
    }
    match &evidence.diagram {
        Ok(path) => outln!(
            "  sequence diagram (the last {} merged events up to the divergence) saved to {}",
            diagram::WINDOW_EVENTS_MAX,
            path.display()
        ),
        Err(reason) => outln!("  sequence diagram not written: {reason}"),
    }
}

fn check(paths: &[PathBuf], floor: usize, repeat: u32, out: Option<&Path>) -> bool {
    let traces = match trace::read_paths(paths) {
        Ok(traces) => traces,
        Err(error) => {
            outln!("check: FAIL");
            outln!("TRACE ERROR: {error}");
            return false;
        }
    };
    let repeated = check::check_repeated(&traces, floor, repeat);
    match repeated.result {
        Ok(checked) => {
            let stats = &checked.stats;
            outln!(
                "check: PASS: {} events, {} model actions; replay: {} events in {:.3} s = {:.0} events/s (one core); the last replay's events {:.3} s, its linearizability checks {:.3} s",
                stats.events,
                stats.actions,
                repeated.events,
                repeated.seconds,
                repeated.events as f64 / repeated.seconds.max(1e-9),
                stats.seconds - stats.linearizable_seconds,
                stats.linearizable_seconds
            );
            if let Some(keys) = &stats.linearizable_undecided_keys {
                note_undecided("check", keys);
            }
            out!("{}", checked.coverage);
            true
        }
        Err(failure) => {
            outln!("check: FAIL");
            let evidence = match &failure {
                CheckFailure::Divergence(divergence) => Some(evidence::save(
                    divergence,
                    out.or(match paths {
                        [directory] if directory.is_dir() => Some(directory.as_path()),
                        _ => None,
                    }),
                    "check",
                    Some(&traces),
                    &[],
                )),
                _ => None,
            };
            print_failure(&failure, evidence.as_ref());
            false
        }
    }
}

/// Plants `mutations` in every run of this process (`planted.rs`); false, with the reason, if
/// this build cannot.
fn plant(mutations: &[Mutation]) -> bool {
    if mutations.is_empty() {
        return true;
    }
    match Mutations::planted(mutations.iter().copied()) {
        Ok(set) => {
            planted::plant(set).expect("bugs are planted once, before any run");
            let names: Vec<&str> = set.iter().map(Mutation::name).collect();
            outln!("planted bugs: {}", names.join(", "));
            true
        }
        Err(error) => {
            eprintln!(
                "vigil-conform: {error}: build vigil-conform with `--features mutations` \
                 (known: {})",
                Mutation::names()
            );
            false
        }
    }
}

/// The `nemesis` subcommand's arguments.
struct NemesisArguments {
    vigil: Option<PathBuf>,
    duration: u64,
    clients: usize,
    keys: usize,
    txn_clients: usize,
    watchers: usize,
    accounts: usize,
    total: u64,
    flood_requests: u64,
    dir: Option<PathBuf>,
    check_traces: bool,
}

fn nemesis(arguments: NemesisArguments) -> bool {
    let vigil = arguments.vigil.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|directory| directory.join("vigil")))
            .unwrap_or_else(|| PathBuf::from("vigil"))
    });
    let temporary = match &arguments.dir {
        Some(_) => None,
        None => match tempfile::Builder::new().prefix("vigil-nemesis-").tempdir() {
            Ok(directory) => Some(directory),
            Err(error) => {
                eprintln!("vigil-conform nemesis: creating a temporary directory: {error}");
                return false;
            }
        },
    };
    let directory = arguments.dir.clone().unwrap_or_else(|| {
        temporary
            .as_ref()
            .expect("created above")
            .path()
            .to_path_buf()
    });
    let mut options = nemesis::NemesisOptions::new(vigil, directory.clone());
    options.duration = std::time::Duration::from_secs(arguments.duration);
    options.clients = arguments.clients.max(1);
    options.keys = arguments.keys.max(1);
    options.txn_clients = arguments.txn_clients;
    options.watchers = arguments.watchers;
    options.accounts = arguments.accounts;
    options.total = arguments.total;
    options.flood_requests = arguments.flood_requests;
    options.check_traces = arguments.check_traces;
    let passed = match nemesis::run(&options) {
        Ok(report) => {
            out!("{report}");
            report.anomalies().is_empty()
        }
        Err(error) => {
            outln!("vigil-conform nemesis: FAIL: {error}");
            false
        }
    };
    if !passed {
        // Keep the evidence: configs, data, traces and every process's log.
        if let Some(temporary) = temporary {
            let kept = temporary.keep();
            outln!("run directory kept: {}", kept.display());
        } else {
            outln!("run directory: {}", directory.display());
        }
    }
    passed
}

/// Prints the summary table; true if no part failed.
fn print_table(title: &str, parts: &[PartResult]) -> bool {
    outln!("{:<36} {:<8} detail", "part", "result");
    for part in parts {
        outln!(
            "{:<36} {:<8} {}",
            part.name,
            part.outcome.word(),
            part.detail
        );
    }
    let count = |outcome| parts.iter().filter(|part| part.outcome == outcome).count();
    let failed = count(part::PartOutcome::Failed);
    let skipped = count(part::PartOutcome::Skipped);
    outln!(
        "{title}: {}: {} passed, {failed} failed, {skipped} SKIPPED of {} parts",
        part::verdict(parts),
        parts.len() - failed - skipped,
        parts.len()
    );
    failed == 0
}

#[cfg(test)]
mod tests {
    use super::{write_to, Written};
    use std::io::{self, Write};

    /// A pipe whose reader went away after `room` bytes.
    struct ClosedAfter {
        room: usize,
        kind: io::ErrorKind,
    }

    impl Write for ClosedAfter {
        fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from(self.kind));
            }
            let written = buffer.len().min(self.room);
            self.room -= written;
            Ok(written)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_an_outcome_and_other_errors_stay_errors() {
        let mut open = ClosedAfter {
            room: 64,
            kind: io::ErrorKind::BrokenPipe,
        };
        let written = write_to(&mut open, format_args!("check: {}\n", "PASS"));
        assert_eq!(written.unwrap(), Written::Done);
        let mut closed = ClosedAfter {
            room: 4,
            kind: io::ErrorKind::BrokenPipe,
        };
        let written = write_to(&mut closed, format_args!("check: {}\n", "PASS"));
        assert_eq!(written.unwrap(), Written::ReaderGone);
        let mut full = ClosedAfter {
            room: 0,
            kind: io::ErrorKind::StorageFull,
        };
        let error = write_to(&mut full, format_args!("x")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
    }
}

//! `vigil-conform`: the project's main job. `verify` (the default) model-checks the `ci`
//! preset, runs the implementation under faults, replays its traces against the model and
//! prints one summary table; `run` runs and validates; `check` validates traces recorded
//! elsewhere; `nemesis` runs real `vigil` processes under SIGSTOP, SIGKILL, partitions and a
//! wrong-cluster flood and checks the clients' history (`docs/reliability.md`). Exit status 1 on
//! any failure, with the first divergence's report; 141 (as if killed by SIGPIPE), quietly, when
//! the reader of its output goes away (`vigil-conform check … | head`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use vigil_conformance::coverage::Coverage;
use vigil_conformance::diagram;
use vigil_conformance::faults::{self, FaultKind, Runner};
use vigil_conformance::nemesis;
use vigil_conformance::planted;
use vigil_conformance::run::{self, CheckFailure};
use vigil_conformance::trace;
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

/// Seeds `verify` runs in simulation, from `VERIFY_SIM_FIRST_SEED`.
const VERIFY_SEEDS: u64 = 8;
/// The first seed of `verify`'s simulation runs.
const VERIFY_SIM_FIRST_SEED: u64 = 1;
/// Seeds `verify` runs of the tokio host under turmoil (well under a second each), from
/// `VERIFY_TURMOIL_FIRST_SEED`.
const VERIFY_TURMOIL_SEEDS: u64 = 8;
/// The first seed of `verify`'s turmoil runs.
const VERIFY_TURMOIL_FIRST_SEED: u64 = 1;
/// Real-TCP runs of `verify`: one per fault kind (real time: ~3 s each).
const VERIFY_TCP_SEEDS: u64 = 7;
/// The faults of `verify`'s real-TCP runs, one kind per run in turn (`docs/trace.md` §7).
const VERIFY_TCP_FAULTS: &str = "all";
/// TCP runs (real time, ~10 s each) when `--mode both`.
const TCP_SEEDS_IN_BOTH: u64 = 2;
/// Masters in a run.
const MASTERS: u64 = 5;

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
    #[arg(long, default_value = "ci")]
    preset: String,
    /// Seeds of the simulation.
    #[arg(long, default_value_t = VERIFY_SEEDS)]
    seeds: u64,
    /// Real-TCP runs; each runs one fault kind of `--tcp-faults`, in turn (0: none).
    #[arg(long, default_value_t = VERIFY_TCP_SEEDS)]
    tcp_seeds: u64,
    /// The real-TCP runs' fault kinds (`all`, `none` or a list).
    #[arg(long, default_value = VERIFY_TCP_FAULTS)]
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
    Run {
        /// Number of seeds (runs per mode).
        #[arg(long, default_value_t = VERIFY_SEEDS)]
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
    },
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

/// The result of one part of `verify` or `run`.
struct PartResult {
    name: String,
    outcome: Outcome,
    detail: String,
}

enum Outcome {
    Passed,
    Failed,
    Skipped,
}

impl Outcome {
    fn word(&self) -> &'static str {
        match self {
            Outcome::Passed => "PASSED",
            Outcome::Failed => "FAILED",
            Outcome::Skipped => "SKIPPED",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ok = match cli.command.unwrap_or(Command::Verify(cli.verify)) {
        Command::Verify(arguments) => verify(&arguments),
        Command::Run {
            seeds,
            mode,
            faults,
            seed,
            trace_dir,
            mutations,
        } => match faults::parse_fault_list(&faults) {
            Ok(_) if !plant(&mutations) => false,
            Ok(kinds) => {
                let parts = run_modes(mode, seed, seeds, &kinds, trace_dir.as_deref());
                print_table("vigil-conform run", &parts)
            }
            Err(error) => {
                eprintln!("vigil-conform: {error}");
                false
            }
        },
        Command::Check {
            paths,
            floor,
            repeat,
        } => check(&paths, floor, repeat),
        Command::Nemesis {
            vigil,
            duration,
            clients,
            keys,
            flood_requests,
            dir,
            no_trace_check,
        } => nemesis(NemesisArguments {
            vigil,
            duration,
            clients,
            keys,
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

fn check(paths: &[PathBuf], floor: usize, repeat: u32) -> bool {
    let traces = match trace::read_paths(paths) {
        Ok(traces) => traces,
        Err(error) => {
            outln!("check: FAIL");
            outln!("TRACE ERROR: {error}");
            return false;
        }
    };
    let (mut events, mut seconds) = (0usize, 0f64);
    let mut result = run::check_traces(&traces, floor);
    for _ in 1..repeat.max(1) {
        if let Ok(checked) = &result {
            events += checked.stats.events;
            seconds += checked.stats.seconds;
        }
        result = run::check_traces(&traces, floor);
    }
    match result {
        Ok(checked) => {
            let stats = &checked.stats;
            events += stats.events;
            seconds += stats.seconds;
            outln!(
                "check: PASS: {} events, {} model actions; replay: {events} events in {seconds:.3} s = {:.0} events/s (one core)",
                stats.events,
                stats.actions,
                events as f64 / seconds.max(1e-9)
            );
            note_undecided("check", stats);
            out!("{}", checked.coverage);
            true
        }
        Err(failure) => {
            outln!("check: FAIL");
            let evidence = Evidence {
                traces: &traces,
                faults: &[],
            };
            print_failure(&failure, None, "check", Some(evidence));
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

fn verify(arguments: &VerifyArgs) -> bool {
    outln!("vigil-conform verify");
    let tcp_kinds = match faults::parse_fault_list(&arguments.tcp_faults) {
        Ok(kinds) => kinds,
        Err(error) => {
            eprintln!("vigil-conform: {error}");
            return false;
        }
    };
    let mut parts = vec![model_check(&arguments.preset)];
    parts.extend(run_modes(
        Mode::Sim,
        VERIFY_SIM_FIRST_SEED,
        arguments.seeds,
        &FaultKind::ALL,
        None,
    ));
    parts.push(run_turmoil(
        VERIFY_TURMOIL_FIRST_SEED,
        VERIFY_TURMOIL_SEEDS,
        &FaultKind::ALL,
        None,
    ));
    parts.push(run_tcp_rotating(arguments.tcp_seeds, &tcp_kinds));
    print_table("verify", &parts)
}

/// `verify`'s real-TCP part: run `i` uses seed `i` and the `i`-th fault kind of `kinds` (in
/// turn; those `FaultKind::runs_on(Runner::Tcp)` leaves out are not run), so a few runs cover every kind,
/// each run short.
fn run_tcp_rotating(runs: u64, kinds: &[FaultKind]) -> PartResult {
    let kinds: Vec<FaultKind> = kinds
        .iter()
        .copied()
        .filter(|kind| kind.runs_on(Runner::Tcp))
        .collect();
    let mut total = PartResult {
        name: "conformance run (real TCP)".to_string(),
        outcome: Outcome::Passed,
        detail: String::new(),
    };
    let (mut events, mut run_seconds, mut exercised) = (0u64, 0f64, Vec::new());
    let mut coverage = Coverage::default();
    for run in 0..runs {
        let seed = run + 1;
        let fault = (!kinds.is_empty()).then(|| kinds[run as usize % kinds.len()]);
        let one: Vec<FaultKind> = fault.into_iter().collect();
        let (part, part_coverage, part_events, part_seconds) = run_tcp_counted(seed, 1, &one, None);
        coverage.add(&part_coverage);
        if let Outcome::Failed = part.outcome {
            total.outcome = Outcome::Failed;
            total.detail = format!(
                "faults {}: {}",
                fault.map_or("none".to_string(), |kind| kind.to_string()),
                part.detail
            );
            return total;
        }
        events += part_events as u64;
        run_seconds += part_seconds;
        exercised.push(fault.map_or("none".to_string(), |kind| kind.to_string()));
    }
    if runs == 0 {
        total.outcome = Outcome::Skipped;
        total.detail = "0 runs asked (--tcp-seeds 0)".to_string();
        return total;
    }
    out!("{coverage}");
    total.detail = format!(
        "{runs} runs ({run_seconds:.0} s), {events} events, faults {}",
        exercised.join(", ")
    );
    total
}

fn model_check(preset: &str) -> PartResult {
    let name = format!("model check (preset {preset})");
    let started = Instant::now();
    let options = vigil_model::check::CheckOptions::default();
    match vigil_model::check::run_named(preset, &options) {
        Ok(suite) => {
            let passed = suite.passed();
            if !passed {
                out!("{suite}");
            }
            PartResult {
                name,
                outcome: if passed {
                    Outcome::Passed
                } else {
                    Outcome::Failed
                },
                detail: format!(
                    "{} presets, {} unique states, {:.1} s",
                    suite.reports.len(),
                    suite.unique_states(),
                    started.elapsed().as_secs_f64()
                ),
            }
        }
        Err(error) => PartResult {
            name,
            outcome: Outcome::Failed,
            detail: error.to_string(),
        },
    }
}

fn run_modes(
    mode: Mode,
    first_seed: u64,
    seeds: u64,
    kinds: &[FaultKind],
    trace_dir: Option<&std::path::Path>,
) -> Vec<PartResult> {
    let mut parts = Vec::new();
    if matches!(mode, Mode::Sim | Mode::All) {
        parts.push(run_sim(first_seed, seeds, kinds, trace_dir));
    }
    if matches!(mode, Mode::Turmoil | Mode::All) {
        parts.push(run_turmoil(first_seed, seeds, kinds, trace_dir));
    }
    if matches!(mode, Mode::Tcp | Mode::All) {
        let tcp_seeds = if mode == Mode::All {
            seeds.min(TCP_SEEDS_IN_BOTH)
        } else {
            seeds
        };
        parts.push(run_tcp(first_seed, tcp_seeds, kinds, trace_dir));
    }
    parts
}

fn run_sim(
    first_seed: u64,
    seeds: u64,
    kinds: &[FaultKind],
    trace_dir: Option<&std::path::Path>,
) -> PartResult {
    let name = "conformance run (core simulation)".to_string();
    let mut coverage = Coverage::default();
    let (mut events, mut replay_seconds) = (0usize, 0f64);
    let mut failure: Option<(u64, CheckFailure, vigil_conformance::sim::SimRun)> = None;
    for seed in first_seed..first_seed + seeds {
        let outcome = run::simulate_and_check(seed, MASTERS, kinds);
        if let Some(directory) = trace_dir {
            let directory = directory.join(format!("sim-seed-{seed}"));
            if let Err(error) = run::write_traces(&directory, &outcome.run.traces) {
                eprintln!(
                    "vigil-conform: writing traces to {}: {error}",
                    directory.display()
                );
            }
        }
        match outcome.result {
            Ok(checked) => {
                coverage.add(&checked.coverage);
                events += checked.stats.events;
                replay_seconds += checked.stats.seconds;
                note_undecided(&format!("seed {seed}"), &checked.stats);
            }
            Err(error) => {
                outln!(
                    "seed {seed}: faults {}",
                    outcome.run.faults_applied.join("; ")
                );
                if matches!(error, CheckFailure::Divergence(_)) && !outcome.plan.faults.is_empty() {
                    let (smallest, title) = run::shrink(seed, MASTERS, &outcome.plan);
                    let faults: Vec<String> =
                        smallest.faults.iter().map(ToString::to_string).collect();
                    outln!(
                        "seed {seed} shrunk to {} of {} faults, still diverging ({title}): [{}]",
                        smallest.faults.len(),
                        outcome.plan.faults.len(),
                        faults.join("; ")
                    );
                    let regression = faults::Regression {
                        seed,
                        masters: MASTERS,
                        plan: smallest,
                        found: title,
                    };
                    save_regression(&regression);
                }
                failure = Some((seed, error, outcome.run));
                break;
            }
        }
    }
    if let Some((seed, failure, run)) = failure {
        let evidence = Evidence {
            traces: &run.traces,
            faults: &run.faults_applied,
        };
        print_failure(
            &failure,
            trace_dir,
            &format!("sim-seed-{seed}"),
            Some(evidence),
        );
        return PartResult {
            name,
            outcome: Outcome::Failed,
            detail: format!(
                "seed {seed} (after {} passing, {events} events): {}",
                seed - first_seed,
                first_line(&failure.to_string())
            ),
        };
    }
    out!("{coverage}");
    let missing = coverage.missing(kinds, Runner::CoreSimulation);
    if !missing.is_empty() {
        return PartResult {
            name,
            outcome: Outcome::Failed,
            detail: format!("vacuous: never happened: {}", missing.join(", ")),
        };
    }
    PartResult {
        name,
        outcome: Outcome::Passed,
        detail: format!(
            "{seeds} seeds, {events} events, {:.0} events/s replayed",
            events as f64 / replay_seconds.max(1e-9)
        ),
    }
}

/// Saves a shrunk divergence as a regression seed, unless this process plants bugs: a planted
/// bug's divergence is not one the real code has.
fn save_regression(regression: &faults::Regression) {
    if !planted::planted().is_empty() {
        outln!("  not saved as a regression seed: this run plants bugs");
        return;
    }
    let directory = faults::regressions_directory();
    match faults::save_regression(&directory, regression) {
        Ok(path) => outln!("  regression seed saved to {}", path.display()),
        Err(error) => eprintln!("vigil-conform: saving the regression seed: {error}"),
    }
}

/// Says so when a run's linearizability check left keys undecided (never counted as passed).
fn note_undecided(run: &str, stats: &vigil_conformance::replay::ReplayStats) {
    if let Some(keys) = &stats.linearizable_undecided_keys {
        outln!(
            "note: {run}: linearizability UNKNOWN for keys {}: the per-key check did not decide them within {} s",
            keys.join(", "),
            vigil_conformance::replay::LINEARIZABLE_CHECK_LIMIT.as_secs()
        );
    }
}

fn run_turmoil(
    first_seed: u64,
    seeds: u64,
    kinds: &[FaultKind],
    trace_dir: Option<&std::path::Path>,
) -> PartResult {
    let name = "conformance run (turmoil host sim)".to_string();
    let mut coverage = Coverage::default();
    let (mut events, mut replay_seconds, mut simulate_seconds) = (0usize, 0f64, 0f64);
    for seed in first_seed..first_seed + seeds {
        let outcome = run::turmoil_and_check(seed, MASTERS, kinds);
        simulate_seconds += outcome.simulate_seconds;
        if let (Some(directory), Some(run)) = (trace_dir, &outcome.run) {
            let directory = directory.join(format!("turmoil-seed-{seed}"));
            if let Err(error) = run::write_traces(&directory, &run.traces) {
                eprintln!(
                    "vigil-conform: writing traces to {}: {error}",
                    directory.display()
                );
            }
        }
        match outcome.result {
            Ok(checked) => {
                coverage.add(&checked.coverage);
                events += checked.stats.events;
                replay_seconds += checked.stats.seconds;
                note_undecided(&format!("turmoil seed {seed}"), &checked.stats);
            }
            Err(failure) => {
                let applied = outcome
                    .run
                    .as_ref()
                    .map(|run| run.faults_applied.clone())
                    .unwrap_or_default();
                outln!("turmoil seed {seed}: faults {}", applied.join("; "));
                if matches!(failure, CheckFailure::Divergence(_)) && !outcome.plan.faults.is_empty()
                {
                    let (smallest, title) = run::shrink_turmoil(seed, MASTERS, &outcome.plan);
                    let faults: Vec<String> =
                        smallest.faults.iter().map(ToString::to_string).collect();
                    outln!(
                        "turmoil seed {seed} shrunk to {} of {} faults, still diverging ({title}): [{}]",
                        smallest.faults.len(),
                        outcome.plan.faults.len(),
                        faults.join("; ")
                    );
                }
                let evidence = outcome.run.as_ref().map(|run| Evidence {
                    traces: &run.traces,
                    faults: &applied,
                });
                print_failure(
                    &failure,
                    trace_dir,
                    &format!("turmoil-seed-{seed}"),
                    evidence,
                );
                return PartResult {
                    name,
                    outcome: Outcome::Failed,
                    detail: format!(
                        "seed {seed} (after {} passing, {events} events): {}",
                        seed - first_seed,
                        first_line(&failure.to_string())
                    ),
                };
            }
        }
    }
    out!("{coverage}");
    PartResult {
        name,
        outcome: Outcome::Passed,
        detail: format!(
            "{seeds} seeds ({simulate_seconds:.1} s simulating), {events} events, {:.0} events/s replayed",
            events as f64 / replay_seconds.max(1e-9)
        ),
    }
}

fn run_tcp(
    first_seed: u64,
    seeds: u64,
    kinds: &[FaultKind],
    trace_dir: Option<&std::path::Path>,
) -> PartResult {
    let (part, coverage, _, _) = run_tcp_counted(first_seed, seeds, kinds, trace_dir);
    if matches!(part.outcome, Outcome::Passed) {
        out!("{coverage}");
    }
    part
}

/// TCP runs: the part's result, the coverage, the events validated and the runs' wall time in
/// seconds.
fn run_tcp_counted(
    first_seed: u64,
    seeds: u64,
    kinds: &[FaultKind],
    trace_dir: Option<&std::path::Path>,
) -> (PartResult, Coverage, usize, f64) {
    let name = "conformance run (real TCP)".to_string();
    let mut coverage = Coverage::default();
    let (mut events, mut replay_seconds, mut run_seconds) = (0usize, 0f64, 0f64);
    for seed in first_seed..first_seed + seeds {
        let scratch = match tempfile::tempdir() {
            Ok(scratch) => scratch,
            Err(error) => {
                let part = PartResult {
                    name,
                    outcome: Outcome::Failed,
                    detail: format!("temporary directory: {error}"),
                };
                return (part, coverage, events, run_seconds);
            }
        };
        let directory = match trace_dir {
            Some(directory) => directory.join(format!("tcp-seed-{seed}")),
            None => scratch.path().to_path_buf(),
        };
        let outcome = run::tcp_and_check(seed, MASTERS, kinds, &directory);
        run_seconds += outcome.run_seconds;
        match outcome.result {
            Ok(checked) => {
                coverage.add(&checked.coverage);
                events += checked.stats.events;
                replay_seconds += checked.stats.seconds;
                note_undecided(&format!("tcp seed {seed}"), &checked.stats);
            }
            Err(failure) => {
                outln!(
                    "tcp seed {seed}: faults {}",
                    outcome.faults_applied.join("; ")
                );
                // The trace files are still there (the scratch directory lives to the loop's end).
                let traces = trace::read_paths(std::slice::from_ref(&directory)).ok();
                let evidence = traces.as_deref().map(|traces| Evidence {
                    traces,
                    faults: &outcome.faults_applied,
                });
                print_failure(&failure, trace_dir, &format!("tcp-seed-{seed}"), evidence);
                let part = PartResult {
                    name,
                    outcome: Outcome::Failed,
                    detail: format!(
                        "seed {seed} (after {} passing): {}",
                        seed - first_seed,
                        first_line(&failure.to_string())
                    ),
                };
                return (part, coverage, events, run_seconds);
            }
        }
    }
    let part = PartResult {
        name,
        outcome: Outcome::Passed,
        detail: format!(
            "{seeds} runs ({run_seconds:.0} s), {events} events, {:.0} events/s replayed",
            events as f64 / replay_seconds.max(1e-9)
        ),
    };
    (part, coverage, events, run_seconds)
}

/// What a failure report can draw: the run's traces and the faults it injected.
struct Evidence<'a> {
    traces: &'a [trace::NodeTrace],
    faults: &'a [String],
}

/// Prints a failure; a divergence's model path is saved as JSON next to the traces (or in the
/// temporary directory) for `vigil_model::check::replay` and the explorer, and its sequence
/// diagram as HTML next to it (`docs/trace.md` §5).
fn print_failure(
    failure: &CheckFailure,
    directory: Option<&std::path::Path>,
    label: &str,
    evidence: Option<Evidence<'_>>,
) {
    outln!("{failure}");
    if let CheckFailure::Divergence(divergence) = failure {
        let directory = directory.map_or_else(std::env::temp_dir, std::path::Path::to_path_buf);
        let path = directory.join(format!("divergence-{label}.json"));
        match std::fs::create_dir_all(&directory)
            .and_then(|()| std::fs::write(&path, divergence.path_json()))
        {
            Ok(()) => outln!(
                "  model path ({} actions) saved to {}",
                divergence.path.len(),
                path.display()
            ),
            Err(error) => outln!("  model path not saved ({}): {error}", path.display()),
        }
        let Some(evidence) = evidence else {
            outln!("  sequence diagram not written: the run left no traces");
            return;
        };
        let path = directory.join(format!("divergence-{label}.html"));
        match diagram::write(evidence.traces, divergence, label, evidence.faults, &path) {
            Ok(()) => outln!(
                "  sequence diagram (the last {} merged events up to the divergence) saved to {}",
                diagram::WINDOW_EVENTS_MAX,
                path.display()
            ),
            Err(error) => outln!("  sequence diagram not written: {error}"),
        }
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
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
    let failed = parts
        .iter()
        .filter(|part| matches!(part.outcome, Outcome::Failed))
        .count();
    let skipped = parts
        .iter()
        .filter(|part| matches!(part.outcome, Outcome::Skipped))
        .count();
    let passed = parts.len() - failed - skipped;
    let verdict = match (failed > 0, skipped > 0) {
        (true, true) => "FAIL, INCOMPLETE",
        (true, false) => "FAIL",
        (false, true) => "INCOMPLETE",
        (false, false) => "PASS",
    };
    outln!(
        "{title}: {verdict}: {passed} passed, {failed} failed, {skipped} SKIPPED of {} parts",
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

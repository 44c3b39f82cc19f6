//! The verification side: vigil's model checker on the `ci` preset beside stateright's own
//! Single Decree Paxos example (built from the stateright crate this workspace locks, run in the
//! same invocation, same thread count), and the replay rate of trace validation on simulated
//! runs (`vigil-conform run --mode sim`, at least 1,000,000 events in the full run).
//!
//! Why the example is built, not copied: stateright publishes it as `examples/paxos.rs` in its
//! crate package, not as a library item; building that file from the registry source that
//! `cargo metadata` points at measures exactly what its authors ship.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_model::check::{self, CheckOptions};
use vigil_model::presets::Strategy;

use vigil_testkit::child_process;

use super::report::{thousands, Section, SectionOutcome, Table};
use super::{BenchError, BenchOptions};

/// Longest a model-checking run or the example's build may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(900);
/// Longest the replay run may take.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(900);

/// One model-checking row.
struct CheckRow {
    tool: String,
    strategy: &'static str,
    unique_states: u64,
    states: u64,
    seconds: f64,
}

impl CheckRow {
    fn cells(&self, threads: usize) -> Vec<String> {
        vec![
            self.tool.clone(),
            self.strategy.to_string(),
            threads.to_string(),
            thousands(self.unique_states),
            thousands(self.states),
            format!("{:.2}", self.seconds),
            thousands((self.unique_states as f64 / self.seconds.max(1e-9)).round() as u64),
        ]
    }
}

/// The model-checking section.
pub async fn model_checking(options: &BenchOptions) -> Section {
    let title = "Model checking".to_string();
    let options = options.clone();
    let measured = tokio::task::spawn_blocking(move || measure_model_checking(&options)).await;
    let outcome = match measured {
        Ok(Ok((tables, notes))) => SectionOutcome::Measured { tables, notes },
        Ok(Err(error)) => SectionOutcome::Failed(error.to_string()),
        Err(error) => SectionOutcome::Failed(format!("model-checking task: {error}")),
    };
    Section { title, outcome }
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|cores| cores.get())
        .unwrap_or(1)
}

fn measure_model_checking(options: &BenchOptions) -> Result<(Vec<Table>, Vec<String>), BenchError> {
    let threads = threads();
    let example = build_paxos_example()?;
    let mut table = Table::new(&[
        "checker",
        "strategy",
        "threads",
        "unique states",
        "states",
        "seconds",
        "unique states/s",
    ]);
    for (strategy, name) in [(Strategy::Dfs, "DFS"), (Strategy::Bfs, "BFS")] {
        let row = check_vigil_model(&options.model_preset, strategy, name, threads)?;
        table.push(row.cells(threads));
    }
    for (subcommand, name) in [("check-dfs", "DFS"), ("check-bfs", "BFS")] {
        let row = run_paxos_example(&example, subcommand, name, options.paxos_clients)?;
        table.push(row.cells(threads));
    }
    let notes = vec![format!(
        "vigil-model: preset `{}` through the `vigil_model::check` library (every safety property and required witness checked; the run fails otherwise). stateright paxos: the `examples/paxos.rs` of the stateright crate this workspace locks, built with `cargo build --release --locked --example paxos` from its registry source and run as `paxos check-dfs|check-bfs {}` (its own properties; it uses every core). Seconds are wall time measured here.",
        options.model_preset, options.paxos_clients
    )];
    Ok((vec![table], notes))
}

fn check_vigil_model(
    preset: &str,
    strategy: Strategy,
    name: &'static str,
    threads: usize,
) -> Result<CheckRow, BenchError> {
    let check_options = CheckOptions {
        strategy: Some(strategy),
        threads: Some(threads),
        ..CheckOptions::default()
    };
    let started = Instant::now();
    let suite = check::run_named(preset, &check_options)
        .map_err(|error| BenchError::Command(error.to_string()))?;
    let seconds = started.elapsed().as_secs_f64();
    if !suite.passed() {
        return Err(BenchError::Command(format!(
            "vigil-model preset {preset} ({name}) did not pass:\n{suite}"
        )));
    }
    Ok(CheckRow {
        tool: format!("vigil-model `{preset}`"),
        strategy: name,
        unique_states: suite.unique_states() as u64,
        states: suite
            .reports
            .iter()
            .map(|report| report.states as u64)
            .sum(),
        seconds,
    })
}

/// The cargo to run: the one running us (`CARGO`), else `cargo` on `PATH`.
fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// This executable (`target/release/vigil-bench`); the other workspace binaries are built
/// next to it.
fn own_executable() -> Result<PathBuf, BenchError> {
    std::env::current_exe()
        .map_err(|error| BenchError::Setup(format!("locating the vigil-bench executable: {error}")))
}

/// The target directory of this build (`CARGO_TARGET_DIR`, else two levels above the executable:
/// `target/release/vigil-bench`).
fn target_directory() -> Result<PathBuf, BenchError> {
    if let Some(directory) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(directory));
    }
    own_executable()?
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            BenchError::Setup("the vigil-bench executable has no target directory".into())
        })
}

/// The source directory of the stateright package locked by this workspace.
fn stateright_source() -> Result<PathBuf, BenchError> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = Command::new(cargo())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .map_err(|error| BenchError::Command(format!("cargo metadata: {error}")))?;
    if !output.status.success() {
        return Err(BenchError::Command(format!(
            "cargo metadata --manifest-path {}: {}",
            manifest.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|error| BenchError::Command(format!("cargo metadata output: {error}")))?;
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    packages
        .iter()
        .find(|package| package["name"] == "stateright")
        .and_then(|package| package["manifest_path"].as_str())
        .and_then(|path| Path::new(path).parent().map(Path::to_path_buf))
        .ok_or_else(|| BenchError::Command("cargo metadata lists no stateright package".into()))
}

/// Builds stateright's `paxos` example (into `<target>/stateright-paxos`); returns its path.
fn build_paxos_example() -> Result<PathBuf, BenchError> {
    let source = stateright_source()?;
    let target = target_directory()?.join("stateright-paxos");
    let log = target.with_extension("build.log");
    std::fs::create_dir_all(&target)
        .map_err(|error| BenchError::Setup(format!("creating {}: {error}", target.display())))?;
    let mut command = Command::new(cargo());
    command
        .args([
            "build",
            "--release",
            "--locked",
            "--example",
            "paxos",
            "--manifest-path",
        ])
        .arg(source.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR");
    run_bounded(command, &log, CHECK_TIMEOUT)?;
    Ok(target.join("release").join("examples").join("paxos"))
}

/// Runs `command` with stdout and stderr in `log`, killing it after `timeout`; returns the
/// log's text and the wall time. Fails if it exits unsuccessfully.
fn run_bounded(
    mut command: Command,
    log: &Path,
    timeout: Duration,
) -> Result<(String, f64), BenchError> {
    let description = format!("{command:?}");
    let file = std::fs::File::create(log)
        .map_err(|error| BenchError::Setup(format!("creating {}: {error}", log.display())))?;
    let file_error =
        |error: std::io::Error| BenchError::Setup(format!("{}: {error}", log.display()));
    command
        .stdin(Stdio::null())
        .stdout(file.try_clone().map_err(file_error)?)
        .stderr(file);
    let mut child = child_process::spawn(command)
        .map_err(|error| BenchError::Command(format!("starting {description}: {error}")))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BenchError::Command(format!(
                    "{description}: killed after {timeout:?}"
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(error) => return Err(BenchError::Command(format!("{description}: {error}"))),
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(log).map_err(file_error)?;
    if !status.success() {
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(BenchError::Command(format!(
            "{description}: {status}; last lines of {}:\n{}",
            log.display(),
            tail.join("\n")
        )));
    }
    Ok((text, seconds))
}

fn run_paxos_example(
    example: &Path,
    subcommand: &str,
    name: &'static str,
    clients: usize,
) -> Result<CheckRow, BenchError> {
    let log = example.with_extension(format!("{subcommand}.log"));
    let mut command = Command::new(example);
    command
        .args([subcommand, &clients.to_string()])
        .env("RUST_LOG", "warn");
    let (text, seconds) = run_bounded(command, &log, CHECK_TIMEOUT)?;
    let done = text
        .lines()
        .find(|line| line.starts_with("Done."))
        .ok_or_else(|| {
            BenchError::Command(format!(
                "paxos {subcommand}: no `Done.` line in {}",
                log.display()
            ))
        })?;
    let field = |key: &str| -> Result<u64, BenchError> {
        done.split([' ', ','])
            .find_map(|part| part.strip_prefix(key))
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| BenchError::Command(format!("paxos {subcommand}: no {key} in `{done}`")))
    };
    Ok(CheckRow {
        tool: format!("stateright paxos, {clients} clients"),
        strategy: name,
        unique_states: field("unique=")?,
        states: field("states=")?,
        seconds,
    })
}

/// The replay section.
pub async fn replay(options: &BenchOptions) -> Section {
    let title = "Trace replay (conformance)".to_string();
    let seeds = options.replay_seeds;
    let work_dir = options.temporary_directory("replay");
    let measured = tokio::task::spawn_blocking(move || {
        let directory = work_dir?;
        measure_replay(seeds, directory.path())
    })
    .await;
    let outcome = match measured {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => SectionOutcome::Failed(error.to_string()),
        Err(error) => SectionOutcome::Failed(format!("replay task: {error}")),
    };
    Section { title, outcome }
}

fn measure_replay(seeds: u64, directory: &Path) -> Result<SectionOutcome, BenchError> {
    let conform = own_executable()?.with_file_name("vigil-conform");
    if !conform.is_file() {
        return Ok(SectionOutcome::Skipped(format!(
            "{} not built (cargo build --release -p vigil-conformance)",
            conform.display()
        )));
    }
    let mut command = Command::new(&conform);
    command.args([
        "run", "--mode", "sim", "--faults", "all", "--seed", "1", "--seeds",
    ]);
    command.arg(seeds.to_string());
    let (text, seconds) = run_bounded(command, &directory.join("replay.log"), REPLAY_TIMEOUT)?;
    let line = text
        .lines()
        .find(|line| line.contains("events/s replayed"))
        .ok_or_else(|| BenchError::Command("vigil-conform run printed no replay rate".into()))?;
    let number_before = |suffix: &str| -> Result<u64, BenchError> {
        line.split(", ")
            .find_map(|part| part.trim().strip_suffix(suffix))
            .and_then(|number| number.split_whitespace().last())
            .and_then(|number| number.parse().ok())
            .ok_or_else(|| BenchError::Command(format!("no `{suffix}` in `{line}`")))
    };
    let events = number_before(" events")?;
    let rate = number_before(" events/s replayed")?;
    let mut table = Table::new(&[
        "simulated runs",
        "events",
        "replayed events/s",
        "wall seconds (simulate + merge + replay)",
        "events/s end to end",
    ]);
    table.push(vec![
        seeds.to_string(),
        thousands(events),
        thousands(rate),
        format!("{seconds:.1}"),
        thousands((events as f64 / seconds.max(1e-9)).round() as u64),
    ]);
    let notes = vec![format!(
        "`vigil-conform run --mode sim --faults all --seed 1 --seeds {seeds}`: 5 simulated masters and a proxy per run under every fault kind, each run's traces merged and replayed against the model on one core; the replay rate is the one vigil-conform reports."
    )];
    Ok(SectionOutcome::Measured {
        tables: vec![table],
        notes,
    })
}

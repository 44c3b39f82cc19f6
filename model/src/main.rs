//! `vigil-model`: model-check, explore and list the seeded bugs of vigil's protocol model.
//!
//! `check` exits 0 when every safety property holds and every required witness was reached
//! (and an exhaustive preset was searched completely), 1 on a violation or an incomplete or
//! vacuous run, 2 on bad arguments.

use anyhow::Context;
use clap::{Parser, Subcommand};
use stateright::Model;
use std::process::ExitCode;
use vigil_model::check::{self, CheckOptions};
use vigil_model::presets::{self, Strategy};
use vigil_model::Bug;

#[derive(Parser)]
#[command(
    name = "vigil-model",
    about = "Model-check vigil's protocol (docs/protocol.md, docs/model.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a preset (or the `ci` list of presets) and print the summary.
    Check {
        /// ci, seed, a member of ci (ci-pause, ci-election, ci-read, ci-crash, ci-disk, ci-txn,
        /// ci-watch, ci-watch-resume, ci-watch-errors) or bug-NAME.
        #[arg(long, default_value = "ci")]
        preset: String,
        /// Switch on a seeded bug (repeatable; see `vigil-model bugs`).
        #[arg(long = "bug")]
        bugs: Vec<Bug>,
        /// bfs, dfs or simulation (default: the preset's).
        #[arg(long)]
        strategy: Option<Strategy>,
        /// Checker threads.
        #[arg(long)]
        threads: Option<usize>,
        /// Stop paths at this depth (the run is then not exhaustive).
        #[arg(long)]
        depth_max: Option<usize>,
        /// Stop after this many seconds (the run is then not exhaustive).
        #[arg(long)]
        seconds_max: Option<u64>,
        /// Seed of the simulation's walks (default 0x5eed = 24301).
        #[arg(long)]
        seed: Option<u64>,
        /// Stop as soon as every required witness was reached (simulation: instead of
        /// walking until the time limit).
        #[arg(long)]
        until_witnessed: bool,
    },
    /// List the seeded bugs: name, then what it does.
    Bugs,
    /// Serve stateright's Explorer on a preset.
    Explore {
        /// A single preset: a member of ci, seed or bug-NAME.
        #[arg(long, default_value = "ci-pause")]
        preset: String,
        /// Switch on a seeded bug (repeatable).
        #[arg(long = "bug")]
        bugs: Vec<Bug>,
        /// Address to serve on (loopback by default).
        #[arg(long, default_value = "127.0.0.1:3000")]
        bind: String,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("vigil-model: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check {
            preset,
            bugs,
            strategy,
            threads,
            depth_max,
            seconds_max,
            seed,
            until_witnessed,
        } => {
            let options = CheckOptions {
                bugs,
                strategy,
                threads,
                depth_max,
                seconds_max,
                progress: true,
                seed,
                until_witnessed,
            };
            let suite = check::run_named(&preset, &options)?;
            println!("{suite}");
            Ok(if suite.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Bugs => {
            for bug in Bug::ALL {
                println!(
                    "{:<20} {} (shows as `{}`)",
                    bug.name(),
                    bug.description(),
                    bug.expected_violation()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Explore { preset, bugs, bind } => {
            let mut presets =
                presets::named(&preset).with_context(|| format!("unknown preset `{preset}`"))?;
            anyhow::ensure!(
                presets.len() == 1,
                "explore takes a single preset, `{preset}` is a list"
            );
            let mut config = presets.remove(0).config;
            config.bugs.extend(bugs);
            println!("serving the Explorer for {preset} on http://{bind}");
            let _checker = config.checker().serve(bind.as_str());
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! `vigil-model`: model-check, explore and list the seeded bugs of vigil's protocol model.
//!
//! `check` exits 0 when every safety property holds and every required witness was reached
//! (and an exhaustive preset was searched completely), 1 on a violation or an incomplete or
//! vacuous run, 2 on bad arguments. `review` exits 0 when head regressed in nothing against
//! base, 1 when it did, 2 when it could not run.

mod versions;

use anyhow::Context;
use clap::{Parser, Subcommand};
use stateright::Model;
use std::process::ExitCode;
use vigil_model::check::{self, CheckOptions};
use vigil_model::presets::{self, Strategy};
use vigil_model::review::{self, Review};
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
        /// ci, seed, five-masters, a member of ci (ci-pause, ci-election, ci-read, ci-crash, ci-disk,
        /// ci-txn, ci-watch, ci-watch-resume, ci-watch-errors, ci-watch-now, ci-lease,
        /// ci-lease-election) or bug-NAME.
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
    /// Review a protocol change: summarise base and head (every preset of the list, with the
    /// abstract states it reaches, and every seeded bug), compare, print the review.
    Review {
        /// The base version: any git revision.
        #[arg(long)]
        base: String,
        /// The head version: a git revision (default: the working tree, this binary).
        #[arg(long)]
        head: Option<String>,
        /// The presets to compare (ci or one preset).
        #[arg(long, default_value = "ci")]
        preset: String,
        /// Example paths per preset and direction to states only one side reaches.
        #[arg(long, default_value_t = 1)]
        paths: usize,
        /// Print the review as JSON instead of Markdown.
        #[arg(long)]
        json: bool,
        /// Where versions are built and summaries cached (default: target/review).
        #[arg(long)]
        work_dir: Option<std::path::PathBuf>,
    },
    /// Write this version's summary as JSON (what `review` compares).
    Summary {
        /// The presets (ci or one preset).
        #[arg(long, default_value = "ci")]
        preset: String,
        /// The file to write.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Write shortest paths in one preset to states whose abstract states a JSON file lists.
    Paths {
        /// One preset.
        #[arg(long)]
        preset: String,
        /// A JSON array of abstract states.
        #[arg(long)]
        targets: std::path::PathBuf,
        /// Paths at most.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// The file to write (a JSON array of paths, each an array of steps).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// List the seeded bugs: name, then what it does.
    Bugs,
    /// Serve stateright's Explorer on a preset.
    Explore {
        /// A single preset: a member of ci, seed, five-masters or bug-NAME.
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
            Ok(exit(suite.passed()))
        }
        Command::Review {
            base,
            head,
            preset,
            paths,
            json,
            work_dir,
        } => review(&base, head.as_deref(), &preset, paths, json, work_dir),
        Command::Summary { preset, out } => {
            let presets =
                presets::named(&preset).with_context(|| format!("unknown preset `{preset}`"))?;
            let summary = review::summarize(&presets, &Bug::ALL, &CheckOptions::default());
            std::fs::write(&out, serde_json::to_string(&summary)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Paths {
            preset,
            targets,
            count,
            out,
        } => {
            let targets = serde_json::from_str(&std::fs::read_to_string(&targets)?)?;
            let found = versions::paths(
                &versions::Version::WorkingTree,
                &preset,
                &targets,
                count,
                std::path::Path::new("."),
            )?;
            std::fs::write(&out, serde_json::to_string(&found)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bugs => {
            list_bugs();
            Ok(ExitCode::SUCCESS)
        }
        Command::Explore { preset, bugs, bind } => explore(&preset, bugs, &bind),
    }
}

fn exit(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn review(
    base: &str,
    head: Option<&str>,
    preset: &str,
    paths: usize,
    json: bool,
    work_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<ExitCode> {
    let work = match work_dir {
        Some(directory) => directory,
        None => versions::default_work_directory()?,
    };
    std::fs::create_dir_all(&work)?;
    let base = versions::prepare(Some(base), &work)?;
    let head = versions::prepare(head, &work)?;
    let base_summary = versions::summary(&base, preset, &work)?;
    let head_summary = versions::summary(&head, preset, &work)?;
    let mut review = Review::new(&base.label(), &base_summary, &head.label(), &head_summary);
    for (name, new, gone) in review.path_targets(paths) {
        let new_paths = versions::paths(&head, &name, &new, paths, &work)?;
        let gone_paths = versions::paths(&base, &name, &gone, paths, &work)?;
        review.add_paths(&name, new_paths, gone_paths);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&review)?);
    } else {
        println!("{review}");
    }
    Ok(exit(!review.failed()))
}

fn list_bugs() {
    for bug in Bug::ALL {
        println!(
            "{:<20} {} (shows as `{}`)",
            bug.name(),
            bug.description(),
            bug.expected_violation()
        );
    }
}

fn explore(preset: &str, bugs: Vec<Bug>, bind: &str) -> anyhow::Result<ExitCode> {
    let mut presets =
        presets::named(preset).with_context(|| format!("unknown preset `{preset}`"))?;
    anyhow::ensure!(
        presets.len() == 1,
        "explore takes a single preset, `{preset}` is a list"
    );
    let mut config = presets.remove(0).config;
    config.bugs.extend(bugs);
    println!("serving the Explorer for {preset} on http://{bind}");
    let _checker = config.checker().serve(bind);
    Ok(ExitCode::SUCCESS)
}

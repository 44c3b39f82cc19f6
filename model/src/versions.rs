//! The binary's side of `vigil-model review`: getting a summary of a version of the model. A
//! commit is exported with `git archive` into the review's work directory (default
//! `target/review` of the repository), built there with `cargo build --release --locked -p
//! vigil-model` into one shared target directory (dependencies are built once), and its binary
//! kept per commit; its summary is cached per commit and preset list. The working tree is this
//! binary itself, summarised in-process. Part of the binary, not the library: it runs git and
//! cargo.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context};
use vigil_model::check::CheckOptions;
use vigil_model::review::{self, Summary};
use vigil_model::{presets, Bug};

/// One side of a review.
pub enum Version {
    /// This binary, built from the working tree.
    WorkingTree,
    /// A commit, built into the work directory.
    Built {
        /// Its full hash.
        commit: String,
        /// Its `vigil-model` binary.
        binary: PathBuf,
    },
}

impl Version {
    /// What a review calls it.
    pub fn label(&self) -> String {
        match self {
            Version::WorkingTree => "the working tree".to_string(),
            Version::Built { commit, .. } => format!("`{}`", &commit[..commit.len().min(10)]),
        }
    }
}

/// The version `revision` names (`None`: the working tree), built if needed.
pub fn prepare(revision: Option<&str>, work: &Path) -> anyhow::Result<Version> {
    let Some(revision) = revision else {
        return Ok(Version::WorkingTree);
    };
    let commit = git(&["rev-parse", "--verify", &format!("{revision}^{{commit}}")])
        .with_context(|| format!("`{revision}` names no commit"))?;
    let binary = work.join("bin").join(format!("vigil-model-{commit}"));
    if !binary.is_file() {
        build(&commit, work, &binary)?;
    }
    Ok(Version::Built { commit, binary })
}

fn build(commit: &str, work: &Path, binary: &Path) -> anyhow::Result<()> {
    let source = work.join("src").join(commit);
    if !source.join("Cargo.toml").is_file() {
        std::fs::create_dir_all(&source)?;
        let archive = Command::new("git")
            .args(["archive", "--format=tar", commit])
            .output()
            .context("running git archive")?;
        ensure!(archive.status.success(), "git archive {commit} failed");
        let mut untar = Command::new("tar")
            .arg("-x")
            .arg("-C")
            .arg(&source)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .context("running tar")?;
        std::io::Write::write_all(untar.stdin.as_mut().expect("piped"), &archive.stdout)?;
        ensure!(untar.wait()?.success(), "unpacking {commit} failed");
    }
    eprintln!("review: building vigil-model at {commit}");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "vigil-model",
            "--manifest-path",
        ])
        .arg(source.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", work.join("target"))
        .status()
        .context("running cargo build")?;
    ensure!(status.success(), "building vigil-model at {commit} failed");
    std::fs::create_dir_all(binary.parent().expect("bin directory"))?;
    std::fs::copy(work.join("target/release/vigil-model"), binary)
        .context("keeping the built binary")?;
    Ok(())
}

/// The summary of `version` on the presets `preset` names, cached per commit and preset name.
pub fn summary(version: &Version, preset: &str, work: &Path) -> anyhow::Result<Summary> {
    match version {
        Version::WorkingTree => {
            let presets =
                presets::named(preset).with_context(|| format!("unknown preset `{preset}`"))?;
            Ok(review::summarize(
                &presets,
                &Bug::ALL,
                &CheckOptions::default(),
            ))
        }
        Version::Built { commit, binary } => {
            let cached = work.join(format!("summary-{commit}-{preset}.json"));
            if !cached.is_file() {
                run(binary, &["summary", "--preset", preset, "--out"], &cached)?;
            }
            let text = std::fs::read_to_string(&cached)?;
            serde_json::from_str(&text).with_context(|| format!("reading {}", cached.display()))
        }
    }
}

/// Up to `count` example paths in `version`'s preset `name` to states in `targets`.
pub fn paths(
    version: &Version,
    name: &str,
    targets: &BTreeSet<String>,
    count: usize,
    work: &Path,
) -> anyhow::Result<Vec<Vec<String>>> {
    if targets.is_empty() || count == 0 {
        return Ok(Vec::new());
    }
    match version {
        Version::WorkingTree => {
            let mut found =
                presets::named(name).with_context(|| format!("unknown preset `{name}`"))?;
            ensure!(found.len() == 1, "`{name}` is not one preset");
            Ok(review::paths_to(&found.remove(0), targets, count))
        }
        Version::Built { commit, binary } => {
            let targets_file = work.join(format!("targets-{commit}-{name}.json"));
            std::fs::write(&targets_file, serde_json::to_string(targets)?)?;
            let out = work.join(format!("paths-{commit}-{name}.json"));
            let count = count.to_string();
            let targets_argument = targets_file.to_string_lossy().into_owned();
            let arguments = [
                "paths",
                "--preset",
                name,
                "--count",
                &count,
                "--targets",
                &targets_argument,
                "--out",
            ];
            run(binary, &arguments, &out)?;
            Ok(serde_json::from_str(&std::fs::read_to_string(&out)?)?)
        }
    }
}

fn run(binary: &Path, arguments: &[&str], out: &Path) -> anyhow::Result<()> {
    let status = Command::new(binary)
        .args(arguments)
        .arg(out)
        .status()
        .with_context(|| format!("running {}", binary.display()))?;
    if !status.success() {
        bail!(
            "{} {} failed ({status}): a base older than `vigil-model summary` cannot be reviewed",
            binary.display(),
            arguments.join(" ")
        );
    }
    Ok(())
}

/// The repository's `target/review`.
pub fn default_work_directory() -> anyhow::Result<PathBuf> {
    let top = git(&["rev-parse", "--show-toplevel"]).context("not in a git repository")?;
    Ok(PathBuf::from(top).join("target").join("review"))
}

fn git(arguments: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("git").args(arguments).output()?;
    ensure!(
        output.status.success(),
        "git {}: {}",
        arguments.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

//! The `vigil` executable a harness starts its masters and proxy from, so that they are the
//! service as shipped and built from the sources in this checkout.
//!
//! In order: `VIGIL_BIN` if set; else `vigil` in the profile directory the calling executable
//! was built in (`<target>/<profile>/` for a binary, `<target>/<profile>/deps/` for a test), if
//! it is newer than every source it is built from (`cargo nextest run --workspace` has just
//! built it there for `impl/node`'s tests, and `cargo run -p vigil-bench` after a build of
//! `vigil` finds it there); else cargo builds it (`cargo build -p vigil --bin vigil`, `--release`
//! if the caller was built so, into the caller's target directory) and the path cargo reports is
//! taken. A package only gets `CARGO_BIN_EXE_*` for its own binaries, hence the search; the
//! freshness check keeps a harness from rebuilding (and overwriting) a binary that
//! `impl/node`'s tests may be running at the same moment.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::TestkitError;

/// The environment variable that names the `vigil` executable outright.
pub const VIGIL_BIN_ENV: &str = "VIGIL_BIN";
/// What the `vigil` binary is built from, relative to the workspace root.
const SOURCES: [&str; 6] = [
    "impl/node/src",
    "impl/node/Cargo.toml",
    "impl/core/src",
    "impl/core/Cargo.toml",
    "Cargo.toml",
    "Cargo.lock",
];

/// The `vigil` executable to start (see the module documentation).
pub fn locate() -> Result<PathBuf, TestkitError> {
    if let Some(path) = std::env::var_os(VIGIL_BIN_ENV) {
        return Ok(PathBuf::from(path));
    }
    let profile = profile_directory()?;
    let sibling = profile.join("vigil");
    if is_fresh(&sibling) {
        return Ok(sibling);
    }
    build(&profile)
}

/// The workspace root (this crate sits one level below it).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The profile directory of the running executable: its own directory, or the parent of
/// `deps/` for a test.
fn profile_directory() -> Result<PathBuf, TestkitError> {
    let executable =
        std::env::current_exe().map_err(TestkitError::io("locating the running executable"))?;
    let directory = executable
        .parent()
        .ok_or_else(|| TestkitError::Build(format!("{} has no directory", executable.display())))?;
    Ok(match directory.file_name() {
        Some(name) if name == "deps" => directory.parent().unwrap_or(directory).to_path_buf(),
        _ => directory.to_path_buf(),
    })
}

/// Whether `binary` exists and is newer than every source it is built from.
fn is_fresh(binary: &Path) -> bool {
    let Some(built) = std::fs::metadata(binary)
        .ok()
        .and_then(|metadata| metadata.modified().ok())
    else {
        return false;
    };
    let workspace = workspace();
    let newest_source = SOURCES
        .iter()
        .filter_map(|source| newest_modification(&workspace.join(source)))
        .max();
    newest_source.is_some_and(|newest| built >= newest)
}

/// The newest modification time under `path` (a file, or a directory walked recursively).
fn newest_modification(path: &Path) -> Option<SystemTime> {
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_dir() {
        return metadata.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| newest_modification(&entry.path()))
        .max()
}

/// Builds `vigil` with the profile of `profile` (a directory named `release`, or the dev
/// profile) into its target directory; the executable cargo reports.
fn build(profile: &Path) -> Result<PathBuf, TestkitError> {
    let release = profile.file_name().is_some_and(|name| name == "release");
    let target = profile
        .parent()
        .ok_or_else(|| TestkitError::Build(format!("{} has no parent", profile.display())))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace()).args([
        "build",
        "-p",
        "vigil",
        "--bin",
        "vigil",
        "--message-format=json-render-diagnostics",
    ]);
    if release {
        command.arg("--release");
    }
    let output = command
        .env("CARGO_TARGET_DIR", target)
        .output()
        .map_err(TestkitError::io("running cargo build -p vigil"))?;
    if !output.status.success() {
        return Err(TestkitError::Build(format!(
            "cargo build -p vigil failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    executable_in(&String::from_utf8_lossy(&output.stdout))
        .ok_or_else(|| TestkitError::Build("cargo reported no vigil executable".to_string()))
}

/// The `executable` of the `vigil` bin artifact in cargo's JSON messages.
fn executable_in(messages: &str) -> Option<PathBuf> {
    messages.lines().find_map(|line| {
        let message: serde_json::Value = serde_json::from_str(line).ok()?;
        let is_vigil = message["reason"] == "compiler-artifact"
            && message["target"]["name"] == "vigil"
            && message["target"]["kind"][0] == "bin";
        is_vigil
            .then(|| message["executable"].as_str().map(PathBuf::from))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executable_is_read_from_cargo_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"vigil","kind":["lib"]},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"vigil","kind":["bin"]},"executable":"target/release/vigil"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            executable_in(messages),
            Some(PathBuf::from("target/release/vigil"))
        );
        assert_eq!(executable_in(r#"{"reason":"build-finished"}"#), None);
    }

    #[test]
    fn a_missing_binary_is_not_fresh() {
        assert!(!is_fresh(Path::new("/nonexistent/vigil")));
    }
}

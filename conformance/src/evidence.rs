//! What a divergence leaves for its reader besides the report: the model path as JSON (for
//! `vigil_model::check::replay` and the explorer) and the sequence diagram of the events up to
//! it as one self-contained HTML file (`docs/trace.md` §5), written next to the run's traces
//! or, when none are kept, in a directory of their own under the temporary directory — never a
//! fixed path, so one failure's evidence is not overwritten by the next.

use std::path::{Path, PathBuf};

use crate::diagram::{self, DiagramError};
use crate::report::Divergence;
use crate::trace::NodeTrace;

/// Why a divergence has no sequence diagram.
#[derive(Debug, thiserror::Error)]
pub enum DiagramNotWritten {
    /// The run failed before it left traces to draw.
    #[error("the run left no traces")]
    NoTraces,
    /// Drawing or writing it failed.
    #[error("{0}")]
    Failed(DiagramError),
}

/// Where a divergence's model path and diagram went.
#[derive(Debug)]
pub struct SavedEvidence {
    /// Model actions on the path.
    pub actions: usize,
    /// The model path's file, or the file it could not be written to and why.
    pub model_path: Result<PathBuf, (PathBuf, std::io::Error)>,
    /// The diagram's file, or why there is none.
    pub diagram: Result<PathBuf, DiagramNotWritten>,
}

/// Saves `divergence`'s model path and diagram as `divergence-<label>.json` and `.html` in
/// `directory`, or without one in a new directory `vigil-divergence-<label>-*` under the
/// temporary directory; `traces` and `faults` are the run's.
pub fn save(
    divergence: &Divergence,
    directory: Option<&Path>,
    label: &str,
    traces: Option<&[NodeTrace]>,
    faults: &[String],
) -> SavedEvidence {
    let directory = directory.map_or_else(|| fresh_directory(label), Path::to_path_buf);
    let path = directory.join(format!("divergence-{label}.json"));
    let model_path = std::fs::create_dir_all(&directory)
        .and_then(|()| std::fs::write(&path, divergence.path_json()))
        .map(|()| path.clone())
        .map_err(|error| (path, error));
    let diagram = match traces {
        None => Err(DiagramNotWritten::NoTraces),
        Some(traces) => {
            let path = directory.join(format!("divergence-{label}.html"));
            diagram::write(traces, divergence, label, faults, &path)
                .map(|()| path)
                .map_err(DiagramNotWritten::Failed)
        }
    };
    SavedEvidence {
        actions: divergence.path.len(),
        model_path,
        diagram,
    }
}

/// A new directory for one failure's evidence under the temporary directory, kept after the
/// process ends (the temporary directory itself when none can be made: writing there reports its
/// own error).
fn fresh_directory(label: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("vigil-divergence-{label}-"))
        .tempdir()
        .map_or_else(|_| std::env::temp_dir(), tempfile::TempDir::keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_failures_without_a_directory_get_directories_of_their_own() {
        let first = fresh_directory("check");
        let second = fresh_directory("check");
        assert_ne!(first, second);
        for directory in [&first, &second] {
            assert!(directory.is_dir(), "{}", directory.display());
            let name = directory
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert!(name.starts_with("vigil-divergence-check-"), "{name}");
            std::fs::remove_dir(directory).unwrap();
        }
    }
}

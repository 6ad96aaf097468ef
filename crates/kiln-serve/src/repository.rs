//! The model repository, laid out as Triton's and TF Serving's are:
//!
//! ```text
//! REPO/<model>/config.toml          optional (see `config`)
//! REPO/<model>/<version>/model.kgraph   (or model.onnx, as Triton's onnxruntime backend)
//! ```
//!
//! Versions are positive integers. Anything else in the repository is ignored, so a
//! half-copied version directory (no model file yet) is not a version.

use crate::config::ModelConfig;
pub use crate::names::check_name;
use std::path::{Path, PathBuf};

/// The file a version directory holds: a Kiln graph file…
pub const GRAPH_FILE: &str = "model.kgraph";
/// … or an ONNX model (imported when it loads; a graph file wins when both are there).
pub const ONNX_FILE: &str = "model.onnx";

/// One model found in the repository: its config and every version in its directory (the
/// registry applies the version policy, as it alone knows which versions load).
#[derive(Clone, Debug)]
pub struct ModelEntry {
    /// The directory name.
    pub name: String,
    /// The model's `config.toml`, or the defaults.
    pub config: ModelConfig,
    /// The versions with their graph files, ascending.
    pub versions: Vec<(u64, PathBuf)>,
}

/// A problem with one model's directory: the other models still load.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryError {
    /// The model's directory name.
    pub model: String,
    /// What is wrong.
    pub message: String,
}

/// Scans `repo`: every model directory with at least one version, and the problems of those
/// that could not be read (a bad `config.toml`, a bad name). An unreadable repository is an
/// error.
pub fn scan(repo: &Path) -> Result<(Vec<ModelEntry>, Vec<EntryError>), String> {
    let dir =
        std::fs::read_dir(repo).map_err(|e| format!("model repository {}: {e}", repo.display()))?;
    let mut models = Vec::new();
    let mut problems = Vec::new();
    for entry in dir.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let problem = |message: String| EntryError {
            model: name.clone(),
            message,
        };
        if let Err(e) = check_name(&name) {
            problems.push(problem(e));
            continue;
        }
        let config = match std::fs::read_to_string(path.join("config.toml")) {
            Ok(text) => match ModelConfig::parse(&text) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(problem(format!("config.toml: {e}")));
                    continue;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ModelConfig::default(),
            Err(e) => {
                problems.push(problem(format!("config.toml: {e}")));
                continue;
            }
        };
        let mut versions: Vec<(u64, PathBuf)> = std::fs::read_dir(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .flatten()
            .filter_map(|v| {
                let number: u64 = v.file_name().to_str()?.parse().ok()?;
                let file = [GRAPH_FILE, ONNX_FILE]
                    .iter()
                    .map(|f| v.path().join(f))
                    .find(|f| f.is_file())?;
                (number > 0).then_some((number, file))
            })
            .collect();
        versions.sort();
        if !versions.is_empty() {
            models.push(ModelEntry {
                name,
                config,
                versions,
            });
        }
    }
    models.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((models, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_numbered_directories_with_a_graph() {
        let repo = tempfile::tempdir().unwrap();
        let m = repo.path().join("digits");
        for v in ["1", "2", "10", "x", "0"] {
            std::fs::create_dir_all(m.join(v)).unwrap();
            std::fs::write(m.join(v).join(GRAPH_FILE), b"").unwrap();
        }
        std::fs::create_dir_all(m.join("3")).unwrap(); // no graph yet: not a version
        std::fs::write(m.join("config.toml"), "version_policy = { latest = 2 }").unwrap();
        std::fs::create_dir_all(repo.path().join("bad").join("1")).unwrap();
        std::fs::write(repo.path().join("bad").join("config.toml"), "oops = 1").unwrap();
        let (models, problems) = scan(repo.path()).unwrap();
        assert_eq!(models.len(), 1);
        let v: Vec<u64> = models[0].versions.iter().map(|v| v.0).collect();
        assert_eq!(v, [1, 2, 10]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].model, "bad");
    }
}

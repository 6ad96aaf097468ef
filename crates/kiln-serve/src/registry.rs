//! The models being served: name → version → loaded model, swapped as a whole on reload so
//! a request sees one consistent set and keeps its model alive (an `Arc`) until it answers.

use crate::error::ServeError;
use crate::model::ServedModel;
use crate::repository::{self, check_name, EntryError, ModelEntry};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Versions of one model, ascending.
pub type Versions = BTreeMap<u64, Arc<ServedModel>>;

/// A version that could not be loaded, kept for its metadata and the logs.
#[derive(Clone, Debug, PartialEq)]
pub struct Unavailable {
    /// Model name.
    pub model: String,
    /// Version, when the problem is one version's.
    pub version: Option<u64>,
    /// Why.
    pub reason: String,
}

/// The served models and the repository they come from.
pub struct Registry {
    repo: PathBuf,
    models: RwLock<BTreeMap<String, Versions>>,
    unavailable: RwLock<Vec<Unavailable>>,
    /// Graph files that failed to load, with their size and modification time then.
    failed: Mutex<HashMap<PathBuf, (FileStamp, String)>>,
    /// How ONNX versions are imported.
    import: kiln_onnx::ImportOptions,
}

/// A file's size and modification time: whether it changed since it was last read.
type FileStamp = (u64, Option<std::time::SystemTime>);

impl Registry {
    /// Loads every model of `repo`. Models or versions that fail to load are reported (and
    /// logged) as unavailable; the others serve.
    pub fn load(repo: &Path) -> Result<Registry, String> {
        Registry::load_with(repo, kiln_onnx::ImportOptions::default())
    }

    /// [`Registry::load`], importing `model.onnx` versions with `import`.
    pub fn load_with(repo: &Path, import: kiln_onnx::ImportOptions) -> Result<Registry, String> {
        let registry = Registry {
            repo: repo.to_path_buf(),
            models: RwLock::new(BTreeMap::new()),
            unavailable: RwLock::new(Vec::new()),
            failed: Mutex::new(HashMap::new()),
            import,
        };
        registry.reload()?;
        Ok(registry)
    }

    /// Scans the repository again: loads versions that are new, drops versions that are gone
    /// (requests in flight keep theirs until they answer), keeps the rest as they are.
    pub fn reload(&self) -> Result<(), String> {
        let (entries, problems) = repository::scan(&self.repo)?;
        let mut unavailable: Vec<Unavailable> = problems
            .into_iter()
            .map(|EntryError { model, message }| Unavailable {
                model,
                version: None,
                reason: message,
            })
            .collect();
        let current = self.models.read().clone();
        let mut next = BTreeMap::new();
        for entry in entries {
            let mut versions = Versions::new();
            for (version, file) in entry.versions.iter().rev() {
                if !entry.config.version_policy.admits(*version, versions.len()) {
                    continue;
                }
                match self.load_version(&entry, &current, *version, file) {
                    Ok(model) => {
                        versions.insert(*version, model);
                    }
                    Err(reason) => unavailable.push(Unavailable {
                        model: entry.name.clone(),
                        version: Some(*version),
                        reason,
                    }),
                }
            }
            if !versions.is_empty() {
                next.insert(entry.name, versions);
            }
        }
        for (name, versions) in &current {
            for version in versions.keys() {
                if next.get(name).is_none_or(|v| !v.contains_key(version)) {
                    eprintln!("kiln serve: unloading {name} version {version}");
                }
            }
        }
        *self.models.write() = next;
        *self.unavailable.write() = unavailable;
        Ok(())
    }

    /// Version `version` of `entry`: the one loaded now if its config is unchanged, else
    /// loaded from `file`. A file that failed before is not loaded again until it changes
    /// (its size or modification time), so a corrupt version is logged once, not every poll.
    fn load_version(
        &self,
        entry: &ModelEntry,
        current: &BTreeMap<String, Versions>,
        version: u64,
        file: &Path,
    ) -> Result<Arc<ServedModel>, String> {
        let kept = current
            .get(&entry.name)
            .and_then(|v| v.get(&version))
            .filter(|m| m.config == entry.config);
        if let Some(model) = kept {
            return Ok(Arc::clone(model));
        }
        let stamp = std::fs::metadata(file)
            .ok()
            .map(|m| (m.len(), m.modified().ok()));
        if let Some((seen, reason)) = self.failed.lock().get(file) {
            if stamp.as_ref() == Some(seen) {
                return Err(reason.clone());
            }
        }
        match ServedModel::load(&entry.name, version, file, &entry.config, &self.import) {
            Ok(model) => {
                eprintln!("kiln serve: loaded {} version {version}", entry.name);
                self.failed.lock().remove(file);
                Ok(Arc::new(model))
            }
            Err(reason) => {
                eprintln!(
                    "kiln serve: {} version {version} is unavailable: {reason}",
                    entry.name
                );
                if let Some(stamp) = stamp {
                    self.failed
                        .lock()
                        .insert(file.to_path_buf(), (stamp, reason.clone()));
                }
                Err(reason)
            }
        }
    }

    /// The model `name` at `version` (default: its highest loaded version).
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<ServedModel>, ServeError> {
        check_name(name).map_err(ServeError::BadRequest)?;
        let models = self.models.read();
        let not_found = |what: String| {
            let why = self
                .unavailable
                .read()
                .iter()
                .find(|u| u.model == name)
                .map(|u| format!(" ({})", u.reason))
                .unwrap_or_default();
            ServeError::NotFound(format!("{what}{why}"))
        };
        let versions = models
            .get(name)
            .ok_or_else(|| not_found(format!("unknown model `{name}`")))?;
        match version {
            None => Ok(Arc::clone(
                versions.values().next_back().expect("a model has versions"),
            )),
            Some(v) => {
                let n: u64 = v.parse().map_err(|_| {
                    ServeError::BadRequest(format!(
                        "version `{}` is not a number",
                        v.escape_debug()
                    ))
                })?;
                versions
                    .get(&n)
                    .cloned()
                    .ok_or_else(|| not_found(format!("model `{name}` has no version {n}")))
            }
        }
    }

    /// Every loaded model version.
    pub fn all(&self) -> Vec<Arc<ServedModel>> {
        self.models
            .read()
            .values()
            .flat_map(|v| v.values().cloned())
            .collect()
    }

    /// The loaded versions of `name`, lowest first (metadata's `versions`).
    pub fn versions_of(&self, name: &str) -> Vec<u64> {
        self.models
            .read()
            .get(name)
            .map(|v| v.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Versions that failed to load, with why.
    pub fn unavailable(&self) -> Vec<Unavailable> {
        self.unavailable.read().clone()
    }
}

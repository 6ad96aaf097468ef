//! A model's `config.toml` in the repository (`REPO/<model>/config.toml`): batching, versions,
//! instances and tensor names, like Triton's `config.pbtxt`. Every field is optional.
//!
//! ```toml
//! max_batch_size = 32           # 0: no batching (each request runs alone)
//! max_queue_delay_us = 500      # how long a request waits for others to join its batch (0:
//!                               # only those already queued join, as Triton's default)
//! preferred_batch_sizes = [8, 16, 32]
//! max_queue_size = 1024         # requests waiting; past this, 503 with Retry-After
//! instance_count = 1            # batches run at once
//! inputs = ["pixels"]           # names of the graph's arguments, in order
//! outputs = ["logits"]          # names of its outputs
//! version_policy = { latest = 1 }   # or { all = true } or { specific = [1, 3] }
//! ```

use serde::Deserialize;

/// Which versions of a model are served.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum VersionPolicy {
    /// The `n` highest version numbers.
    Latest(usize),
    /// Every version (the value must be `true`).
    All(bool),
    /// These versions, those that exist.
    Specific(Vec<u64>),
}

impl Default for VersionPolicy {
    fn default() -> Self {
        VersionPolicy::Latest(1)
    }
}

impl VersionPolicy {
    /// Whether `version` is served when `served` newer versions already are. Versions are
    /// offered newest first, and one that fails to load does not count: `latest = N` is the
    /// newest N versions *that load*, so a corrupt new version does not unload the one
    /// serving now.
    pub fn admits(&self, version: u64, served: usize) -> bool {
        match self {
            VersionPolicy::Latest(n) => served < *n,
            VersionPolicy::All(_) => true,
            VersionPolicy::Specific(v) => v.contains(&version),
        }
    }
}

/// A model's settings; see the module documentation for the file format.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// The largest batch a request or a joined batch may have (0: no batching).
    pub max_batch_size: usize,
    /// Microseconds a request waits for others to join its batch.
    pub max_queue_delay_us: u64,
    /// Batch sizes the batcher prefers to stop at.
    pub preferred_batch_sizes: Vec<usize>,
    /// Requests that may wait in the queue.
    pub max_queue_size: usize,
    /// Batches run at once.
    pub instance_count: usize,
    /// Input names, in the graph's argument order (default `input__0`, `input__1`, …).
    pub inputs: Vec<String>,
    /// Output names, in the graph's output order (default `output__0`, …).
    pub outputs: Vec<String>,
    /// Which versions are served.
    pub version_policy: VersionPolicy,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            max_batch_size: 32,
            max_queue_delay_us: 0,
            preferred_batch_sizes: Vec::new(),
            max_queue_size: 1024,
            instance_count: 1,
            inputs: Vec::new(),
            outputs: Vec::new(),
            version_policy: VersionPolicy::default(),
        }
    }
}

impl ModelConfig {
    /// Parses and checks a `config.toml`; the error names the field.
    pub fn parse(text: &str) -> Result<ModelConfig, String> {
        let c: ModelConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if c.instance_count == 0 || c.instance_count > 64 {
            return Err(format!(
                "instance_count must be 1 to 64, got {}",
                c.instance_count
            ));
        }
        if c.max_queue_size == 0 {
            return Err("max_queue_size must be at least 1".into());
        }
        if c.max_batch_size > 1 << 16 {
            return Err(format!("max_batch_size {} is too large", c.max_batch_size));
        }
        if c.max_queue_delay_us > 10_000_000 {
            return Err(format!(
                "max_queue_delay_us {} is over 10 s",
                c.max_queue_delay_us
            ));
        }
        if let Some(p) = c
            .preferred_batch_sizes
            .iter()
            .find(|&&p| p == 0 || p > c.max_batch_size)
        {
            return Err(format!(
                "preferred_batch_sizes: {p} is not between 1 and max_batch_size ({})",
                c.max_batch_size
            ));
        }
        if let VersionPolicy::All(false) = c.version_policy {
            return Err("version_policy: `all` must be true".into());
        }
        for name in c.inputs.iter().chain(&c.outputs) {
            crate::names::check_name(name).map_err(|e| format!("tensor name: {e}"))?;
        }
        Ok(c)
    }

    /// The name of input `i`.
    pub fn input_name(&self, i: usize) -> String {
        self.inputs
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("input__{i}"))
    }

    /// The name of output `i`.
    pub fn output_name(&self, i: usize) -> String {
        self.outputs
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("output__{i}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The versions `policy` serves of `available` (ascending) when those in `broken` fail
    /// to load, ascending.
    fn served(policy: &VersionPolicy, available: &[u64], broken: &[u64]) -> Vec<u64> {
        let mut loaded = Vec::new();
        for &v in available.iter().rev() {
            if policy.admits(v, loaded.len()) && !broken.contains(&v) {
                loaded.push(v);
            }
        }
        loaded.reverse();
        loaded
    }

    #[test]
    fn the_documented_example_parses() {
        let c = ModelConfig::parse(
            "max_batch_size = 16\nmax_queue_delay_us = 200\npreferred_batch_sizes = [8, 16]\n\
             inputs = [\"pixels\"]\noutputs = [\"logits\"]\nversion_policy = { latest = 2 }\n",
        )
        .unwrap();
        assert_eq!(c.max_batch_size, 16);
        assert_eq!(c.input_name(0), "pixels");
        assert_eq!(c.output_name(1), "output__1");
        assert_eq!(served(&c.version_policy, &[1, 2, 5], &[]), [2, 5]);
        assert_eq!(
            served(&VersionPolicy::Specific(vec![1, 9]), &[1, 2], &[]),
            [1]
        );
        // Latest N skips a version that fails to load for the next older one.
        assert_eq!(served(&c.version_policy, &[1, 2, 5], &[5]), [1, 2]);
    }

    #[test]
    fn mistakes_name_the_field() {
        assert!(ModelConfig::parse("max_batch = 3")
            .unwrap_err()
            .contains("max_batch"));
        assert!(ModelConfig::parse("instance_count = 0")
            .unwrap_err()
            .contains("instance_count"));
        assert!(
            ModelConfig::parse("max_batch_size = 4\npreferred_batch_sizes = [8]")
                .unwrap_err()
                .contains("preferred_batch_sizes")
        );
        assert!(ModelConfig::parse("inputs = [\"a/b\"]")
            .unwrap_err()
            .contains("tensor name"));
    }
}

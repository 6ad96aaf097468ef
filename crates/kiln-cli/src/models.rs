//! The built-in architectures `kiln train --model` offers, sized from the data's input shape.

use kiln_nn::{Conv2d, Conv2dConfig, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential};
use serde_json::{json, Value};

/// Architecture names accepted by `--model`.
pub const MODELS: &[&str] = &["mlp", "cnn"];

/// Most classes a model may have: a label of 10⁹ in a CSV file would otherwise ask for a
/// 512 GB output layer.
pub const MAX_CLASSES: usize = 100_000;

/// Most parameters a built-in model may have (2³⁰, 4 GiB of f32 weights): checkpoint metadata
/// or data with absurd sizes is refused before anything is allocated.
pub const MAX_PARAMETERS: u64 = 1 << 30;

/// What a checkpoint records so `kiln eval`/`predict` can rebuild the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// `mlp` or `cnn`.
    pub kind: String,
    /// Per-sample input shape (`[C, H, W]` for images, `[F]` for tables).
    pub input: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
    /// Raw input values are divided by this before the model sees them (16 for digits, 255
    /// for 8-bit images, 1 for CSV tables); `kiln predict` applies it to CSV rows.
    pub scale: f64,
    /// The class names by index, when the labels were text (`setosa`, `versicolor`, …);
    /// `None` when they were class indices.
    pub class_names: Option<Vec<String>>,
    /// The feature column names of CSV data, in input order (`None` for images and for
    /// checkpoints written before they were recorded), so `kiln eval` and `kiln predict` can
    /// match a file's columns by name.
    pub feature_names: Option<Vec<String>>,
}

impl ModelSpec {
    /// As JSON for checkpoint metadata; the optional names are left out when absent, so a
    /// spec without them is written as before.
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "kind": self.kind, "input": self.input, "classes": self.classes, "scale": self.scale });
        if let Some(names) = &self.class_names {
            v["class_names"] = json!(names);
        }
        if let Some(names) = &self.feature_names {
            v["feature_names"] = json!(names);
        }
        v
    }

    /// The name of class `index`, or the index itself as text when the classes have no
    /// names.
    pub fn class_name(&self, index: usize) -> String {
        match &self.class_names {
            Some(names) => names[index].clone(),
            None => index.to_string(),
        }
    }

    /// From checkpoint metadata, validated (see [`ModelSpec::validate`]); errors name the
    /// field.
    pub fn from_json(v: &Value) -> Result<ModelSpec, String> {
        let field = |k: &str| v.get(k).ok_or_else(|| format!("no field `{k}`"));
        let bad = |k: &str, want: &str| format!("field `{k}` is not {want}");
        let spec = ModelSpec {
            kind: field("kind")?
                .as_str()
                .ok_or_else(|| bad("kind", "a string"))?
                .to_string(),
            input: field("input")?
                .as_array()
                .and_then(|dims| {
                    dims.iter()
                        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                        .collect::<Option<_>>()
                })
                .ok_or_else(|| bad("input", "a list of sizes"))?,
            classes: field("classes")?
                .as_u64()
                .and_then(|c| usize::try_from(c).ok())
                .ok_or_else(|| bad("classes", "a whole number"))?,
            scale: match v.get("scale") {
                None => 1.0,
                Some(s) => s.as_f64().ok_or_else(|| bad("scale", "a number"))?,
            },
            class_names: names(v, "class_names")?,
            feature_names: names(v, "feature_names")?,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks that the spec describes a model that can be built: a known kind, 1 to
    /// [`MAX_CLASSES`] classes, non-zero input sizes (images of at least 2×2 for the cnn), a
    /// finite positive scale and at most [`MAX_PARAMETERS`] parameters.
    pub fn validate(&self) -> Result<(), String> {
        if !MODELS.contains(&self.kind.as_str()) {
            return Err(format!(
                "unknown model `{}`; choose one of {}",
                self.kind,
                MODELS.join(", ")
            ));
        }
        if !(1..=MAX_CLASSES).contains(&self.classes) {
            return Err(format!(
                "`classes` is {}; a model has 1 to {MAX_CLASSES} classes",
                self.classes
            ));
        }
        if self.input.is_empty() || self.input.contains(&0) {
            return Err(format!(
                "`input` is {:?}; every input size must be at least 1",
                self.input
            ));
        }
        if self.kind == "cnn" && !matches!(self.input[..], [_, h, w] if h >= 2 && w >= 2) {
            return Err(format!(
                "the cnn model needs image input [C, H, W] with H, W ≥ 2, got {:?}",
                self.input
            ));
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(format!(
                "`scale` is {}; it must be a finite number > 0",
                self.scale
            ));
        }
        check_names(self.class_names.as_deref(), "class_names", self.classes)?;
        // An input size that overflows is refused below, by the parameter count.
        if let Some(features) = self.input.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
            check_names(self.feature_names.as_deref(), "feature_names", features)?;
        }
        match self.num_parameters() {
            Some(n) if n <= MAX_PARAMETERS => Ok(()),
            n => Err(format!(
                "a {} model for input {:?} and {} classes would have {} parameters; at most \
                 {MAX_PARAMETERS} are supported",
                self.kind,
                self.input,
                self.classes,
                n.map_or("too many".to_string(), |n| n.to_string())
            )),
        }
    }

    /// The number of parameters [`ModelSpec::build`] creates (`None` on overflow).
    pub fn num_parameters(&self) -> Option<u64> {
        let linear = |i: u64, o: u64| i.checked_mul(o)?.checked_add(o);
        let classes = self.classes as u64;
        let features = self
            .input
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))?;
        match (self.kind.as_str(), &self.input[..]) {
            ("mlp", _) => linear(features, 256)?
                .checked_add(linear(256, 128)?)?
                .checked_add(linear(128, classes)?),
            ("cnn", &[c, h, w]) => {
                let conv = |i: u64, o: u64| linear(i.checked_mul(9)?, o);
                let flat = 64u64
                    .checked_mul((h / 2) as u64)?
                    .checked_mul((w / 2) as u64)?;
                conv(c as u64, 32)?
                    .checked_add(conv(32, 64)?)?
                    .checked_add(linear(flat, 128)?)?
                    .checked_add(linear(128, classes)?)
            }
            _ => None,
        }
    }

    /// Builds the network (fresh PyTorch-style initialization from the global generator)
    /// after [`ModelSpec::validate`].
    pub fn build(&self) -> Result<Sequential, String> {
        self.validate()?;
        let features: usize = self.input.iter().product();
        match self.kind.as_str() {
            "mlp" => Ok(Sequential::new()
                .append(Flatten::new())
                .append(Linear::new(features, 256))
                .append(ReLU::new())
                .append(Linear::new(256, 128))
                .append(ReLU::new())
                .append(Linear::new(128, self.classes))),
            "cnn" => {
                let [c, h, w] = self.input[..] else {
                    return Err(format!(
                        "the cnn model needs image input [C, H, W], got {:?}",
                        self.input
                    ));
                };
                let pad1 = || Conv2dConfig::default().padding(1);
                Ok(Sequential::new()
                    .append(Conv2d::with_config(c, 32, 3, pad1()))
                    .append(ReLU::new())
                    .append(Conv2d::with_config(32, 64, 3, pad1()))
                    .append(ReLU::new())
                    .append(MaxPool2d::new(2))
                    .append(Flatten::new())
                    .append(Linear::new(64 * (h / 2) * (w / 2), 128))
                    .append(ReLU::new())
                    .append(Dropout::new(0.25))
                    .append(Linear::new(128, self.classes)))
            }
            other => Err(format!(
                "unknown model `{other}`; choose one of {}",
                MODELS.join(", ")
            )),
        }
    }
}

/// The optional list of names under `key` (`None` when the key is absent).
fn names(v: &Value, key: &str) -> Result<Option<Vec<String>>, String> {
    let Some(list) = v.get(key) else {
        return Ok(None);
    };
    list.as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .map(Some)
        .ok_or_else(|| format!("field `{key}` is not a list of strings"))
}

/// Names, when present, must be one per slot (`want` of them), non-empty and distinct: a
/// name must identify one class or one column.
fn check_names(names: Option<&[String]>, key: &str, want: usize) -> Result<(), String> {
    let Some(names) = names else {
        return Ok(());
    };
    if names.len() != want {
        return Err(format!(
            "`{key}` has {} names for {want} entries",
            names.len()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for n in names {
        if n.is_empty() {
            return Err(format!("`{key}` has an empty name"));
        }
        if !seen.insert(n) {
            return Err(format!("`{key}` names `{n}` twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_nn::ModuleBase;

    fn spec(kind: &str, input: &[usize], classes: usize) -> ModelSpec {
        ModelSpec {
            kind: kind.into(),
            input: input.to_vec(),
            classes,
            scale: 1.0,
            class_names: None,
            feature_names: None,
        }
    }

    #[test]
    fn parameter_counts_match_the_built_models() {
        for s in [
            spec("mlp", &[7], 3),
            spec("cnn", &[1, 8, 8], 10),
            spec("cnn", &[3, 5, 7], 4),
        ] {
            let built = s.build().unwrap().num_parameters() as u64;
            assert_eq!(s.num_parameters(), Some(built), "{s:?}");
        }
    }

    #[test]
    fn absurd_specs_are_refused_before_allocating() {
        let e = spec("mlp", &[4], 1_000_000_000_000).validate().unwrap_err();
        assert!(e.contains("`classes` is 1000000000000"), "{e}");
        let e = spec("mlp", &[1 << 40], 3).validate().unwrap_err();
        assert!(e.contains("parameters"), "{e}");
        let e = spec("cnn", &[1, 1, 8], 3).validate().unwrap_err();
        assert!(e.contains("H, W ≥ 2"), "{e}");
        let e = spec("mlp", &[0], 3).validate().unwrap_err();
        assert!(e.contains("at least 1"), "{e}");
        let e = ModelSpec::from_json(&json!({"kind": "mlp", "input": [4], "classes": 1e12}));
        assert!(e.unwrap_err().contains("`classes`"));
    }

    #[test]
    fn names_round_trip_and_are_checked() {
        let mut s = spec("mlp", &[2], 2);
        s.class_names = Some(vec!["cat".into(), "dog".into()]);
        s.feature_names = Some(vec!["h".into(), "w".into()]);
        assert_eq!(ModelSpec::from_json(&s.to_json()), Ok(s.clone()));
        assert_eq!(s.class_name(1), "dog");
        // Written before names were recorded: no names, class indices as text.
        let old = ModelSpec::from_json(&json!({"kind": "mlp", "input": [2], "classes": 2}));
        assert_eq!(old.as_ref().map(|o| o.class_name(1)), Ok("1".to_string()));
        s.class_names = Some(vec!["cat".into()]);
        assert!(s.validate().unwrap_err().contains("1 names for 2 entries"));
        s.class_names = Some(vec!["cat".into(), "cat".into()]);
        assert!(s.validate().unwrap_err().contains("twice"));
        let e = ModelSpec::from_json(
            &json!({"kind": "mlp", "input": [2], "classes": 2, "class_names": [1, 2]}),
        );
        assert!(e.unwrap_err().contains("`class_names`"));
    }
}

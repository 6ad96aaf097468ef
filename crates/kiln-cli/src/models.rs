//! The built-in architectures `kiln train --model` offers, sized from the data's input shape.

use kiln_nn::{Conv2d, Conv2dConfig, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential};
use serde_json::{json, Value};

/// Architecture names accepted by `--model`.
pub const MODELS: &[&str] = &["mlp", "cnn"];

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
}

impl ModelSpec {
    /// As JSON for checkpoint metadata.
    pub fn to_json(&self) -> Value {
        json!({ "kind": self.kind, "input": self.input, "classes": self.classes, "scale": self.scale })
    }

    /// From checkpoint metadata.
    pub fn from_json(v: &Value) -> Option<ModelSpec> {
        Some(ModelSpec {
            kind: v.get("kind")?.as_str()?.to_string(),
            input: v
                .get("input")?
                .as_array()?
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize))
                .collect::<Option<_>>()?,
            classes: v.get("classes")?.as_u64()? as usize,
            scale: v.get("scale").and_then(Value::as_f64).unwrap_or(1.0),
        })
    }

    /// Builds the network (fresh PyTorch-style initialization from the global generator).
    pub fn build(&self) -> Result<Sequential, String> {
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

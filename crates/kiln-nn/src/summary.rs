//! `summary`: a model's layers with their output shapes and parameter counts, like Keras'
//! `model.summary()` (or `torchinfo.summary` for PyTorch).
//!
//! The output shapes come from running the model once on an example input: while
//! [`summary`] runs it, each built-in layer reports its output through [`observed`]. A module
//! of your own (a `#[derive(Module)]` struct) shows its parameter count and the shapes of
//! the layers inside it; its own output shape is shown for the top-level model only, since
//! its `forward` is your code.

use crate::forward::MultiInput;
use crate::module::ModuleBase;
use kiln_core::{no_grad, Tensor};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

/// Which module produced an output: its address and type. Zero-sized layers (`ReLU`) share
/// one address, so their outputs are told apart by the order they ran in.
type Key = (usize, &'static str);

thread_local! {
    /// Output shapes by module, in call order, while a [`summary`] runs on this thread.
    static RECORDING: RefCell<Option<HashMap<Key, Vec<Vec<usize>>>>> =
        const { RefCell::new(None) };
}

fn key(module: &dyn ModuleBase) -> Key {
    (
        module as *const dyn ModuleBase as *const () as usize,
        module.type_name(),
    )
}

/// Returns `out` after noting its shape as `module`'s output when a [`summary`] is running
/// on this thread (a thread-local check otherwise). Built-in layers call it at the end of
/// `forward`; a layer of your own may too.
pub fn observed(module: &dyn ModuleBase, out: Tensor) -> Tensor {
    RECORDING.with(|r| {
        if let Some(map) = r.borrow_mut().as_mut() {
            map.entry(key(module))
                .or_default()
                .push(out.shape().to_vec());
        }
    });
    out
}

/// One row of a [`Summary`].
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// Dotted path from the model (`features.0`); empty for the model itself.
    pub name: String,
    /// The module's type (`Conv2d`).
    pub type_name: &'static str,
    /// Nesting depth (0 for the model).
    pub depth: usize,
    /// The output shape of its first call, when it reported one.
    pub output_shape: Option<Vec<usize>>,
    /// Parameters of this module and everything inside it.
    pub params: usize,
}

/// A model's layer table: see [`summary`]. `Display` prints it as Keras does.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The model and every module inside it, in definition order.
    pub rows: Vec<SummaryRow>,
    /// Trainable parameters (elements of tensors that require grad).
    pub trainable: usize,
    /// Parameters that do not require grad (frozen).
    pub frozen: usize,
    /// Elements in buffers (running statistics): state, not trained.
    pub buffers: usize,
    /// Bytes of parameters and buffers.
    pub bytes: usize,
}

/// Runs `model` once on `inputs` (in eval mode, without gradients; the training flag is
/// restored after) and lists every module with its output shape and parameter count.
///
/// ```
/// use kiln_nn::{summary, Linear, ReLU, Sequential};
/// use kiln_core::{DType, Tensor};
/// let mlp = Sequential::new().append(Linear::new(4, 8)).append(ReLU::new()).append(Linear::new(8, 2));
/// let s = summary(&mlp, &[Tensor::zeros([16, 4], DType::F32)]);
/// assert_eq!(s.rows[1].output_shape, Some(vec![16, 8]));
/// assert_eq!(s.trainable, 4 * 8 + 8 + 8 * 2 + 2);
/// println!("{s}");
/// ```
pub fn summary(model: &dyn MultiInput, inputs: &[Tensor]) -> Summary {
    let mut modes = Vec::new();
    each_module(model.as_dyn(), &mut |m| modes.push(m.own_training()));
    model.eval();
    let previous = RECORDING.with(|r| r.borrow_mut().replace(HashMap::new()));
    let out = no_grad(|| model.forward_inputs(inputs));
    let mut seen = RECORDING
        .with(|r| std::mem::replace(&mut *r.borrow_mut(), previous))
        .unwrap_or_default();
    // Each module's own mode back, as it was (a frozen batch norm may be in eval on purpose).
    let mut modes = modes.into_iter();
    each_module(model.as_dyn(), &mut |m| {
        if let Some(Some(training)) = modes.next() {
            m.set_own_training(training);
        }
    });

    let mut rows = Vec::new();
    let mut taken: HashMap<Key, usize> = HashMap::new();
    collect(model.as_dyn(), "", 0, &mut seen, &mut taken, &mut rows);
    rows[0].output_shape = Some(out.shape().to_vec());

    let (mut trainable, mut frozen, mut buffers, mut bytes) = (0, 0, 0, 0);
    for (_, p) in model.named_parameters() {
        if p.requires_grad() {
            trainable += p.numel();
        } else {
            frozen += p.numel();
        }
        bytes += p.numel() * p.dtype().size_in_bytes();
    }
    for (_, b) in model.named_buffers() {
        buffers += b.numel();
        bytes += b.numel() * b.dtype().size_in_bytes();
    }
    Summary {
        rows,
        trainable,
        frozen,
        buffers,
        bytes,
    }
}

/// Calls `f` on `m` and every module inside it, in definition order.
fn each_module(m: &dyn ModuleBase, f: &mut dyn FnMut(&dyn ModuleBase)) {
    f(m);
    for (_, child) in m.children() {
        each_module(child, f);
    }
}

fn collect(
    m: &dyn ModuleBase,
    name: &str,
    depth: usize,
    seen: &mut HashMap<Key, Vec<Vec<usize>>>,
    taken: &mut HashMap<Key, usize>,
    rows: &mut Vec<SummaryRow>,
) {
    let k = key(m);
    // The i-th module of a key in the tree gets the i-th recorded output of that key: exact
    // for distinct layers, and for zero-sized ones in a chain (they run in tree order).
    let nth = taken.entry(k).or_insert(0);
    let output_shape = seen.get(&k).and_then(|v| v.get(*nth)).cloned();
    *nth += 1;
    rows.push(SummaryRow {
        name: name.to_string(),
        type_name: m.type_name(),
        depth,
        output_shape,
        params: m.num_parameters(),
    });
    for (child, c) in m.children() {
        let full = if name.is_empty() {
            child
        } else {
            format!("{name}.{child}")
        };
        collect(c, &full, depth + 1, seen, taken, rows);
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: Vec<(String, String, String)> = self
            .rows
            .iter()
            .map(|r| {
                let label = if r.name.is_empty() {
                    r.type_name.to_string()
                } else {
                    format!("{:w$}{} ({})", "", r.name, r.type_name, w = 2 * r.depth)
                };
                let shape = r
                    .output_shape
                    .as_ref()
                    .map_or("-".to_string(), |s| format!("{s:?}"));
                (label, shape, thousands(r.params))
            })
            .collect();
        let w0 = cells.iter().map(|c| c.0.len()).max().unwrap_or(0).max(12);
        let w1 = cells.iter().map(|c| c.1.len()).max().unwrap_or(0).max(12);
        let w2 = cells.iter().map(|c| c.2.len()).max().unwrap_or(0).max(7);
        let rule = "=".repeat(w0 + w1 + w2 + 4);
        writeln!(
            f,
            "{:w0$}  {:w1$}  {:>w2$}",
            "Layer (type)", "Output shape", "Param #"
        )?;
        writeln!(f, "{rule}")?;
        for (label, shape, params) in &cells {
            writeln!(f, "{label:w0$}  {shape:w1$}  {params:>w2$}")?;
        }
        writeln!(f, "{rule}")?;
        writeln!(
            f,
            "Total params: {}",
            thousands(self.trainable + self.frozen)
        )?;
        writeln!(f, "Trainable params: {}", thousands(self.trainable))?;
        writeln!(f, "Non-trainable params: {}", thousands(self.frozen))?;
        writeln!(f, "Buffers: {}", thousands(self.buffers))?;
        write!(
            f,
            "Parameter and buffer size: {:.2} MiB",
            self.bytes as f64 / (1024.0 * 1024.0)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}

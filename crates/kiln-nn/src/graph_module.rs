//! A module made from a graph (an imported ONNX network): the graph's weight inputs become
//! parameters (or buffers, for statistics that are not trained), and the forward pass replays
//! its ops eagerly, each through the one dispatch, so autograd records them and Kiln's
//! optimizers train the weights. A graph with a symbolic batch is written out at each batch
//! size it is called with (the last 4 kept).

use crate::{Module, ModuleBase};
use kiln_core::ops::dispatch;
use kiln_core::Tensor;
pub use kiln_runtime::ir::GraphWeight;
use kiln_runtime::ir::{Graph, InputKind, ValueId};
use kiln_runtime::symbolic::{BySize, DynamicGraph};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// A graph run as a module; see the module docs.
pub struct GraphModule {
    form: Form,
    /// Per weight input: its name and tensor, and whether it is trained.
    weights: Vec<(ValueId, String, Tensor, bool)>,
}

enum Form {
    Fixed(Arc<Graph>),
    Dynamic {
        graph: Box<DynamicGraph>,
        sized: Mutex<BySize<Graph>>,
    },
}

impl GraphModule {
    /// A module over `graph` (or `dynamic`, when its batch is symbolic), its `weights`' values
    /// taken from the graph's inputs. Panics when a weight names no input with a value.
    pub fn new(
        graph: Graph,
        dynamic: Option<DynamicGraph>,
        weights: &[GraphWeight],
    ) -> GraphModule {
        let weights = weights
            .iter()
            .map(|w| {
                let value = graph
                    .input(w.id)
                    .and_then(|i| i.value.as_ref())
                    .unwrap_or_else(|| {
                        panic!("GraphModule: weight {} is not a graph input", w.name)
                    });
                let t = Tensor::from_owned_operand(value).contiguous();
                let trainable = w.trainable && t.dtype().is_float();
                let t = if trainable { t.requires_grad_(true) } else { t };
                (w.id, w.name.clone(), t, trainable)
            })
            .collect();
        let form = match dynamic {
            Some(d) => Form::Dynamic {
                graph: Box::new(d),
                sized: Mutex::new(BySize::new(4)),
            },
            None => Form::Fixed(Arc::new(graph)),
        };
        GraphModule { form, weights }
    }

    /// The graph at the batch size of `args`.
    #[track_caller]
    fn graph_for(&self, args: &[Tensor]) -> Arc<Graph> {
        match &self.form {
            Form::Fixed(g) => Arc::clone(g),
            Form::Dynamic { graph, sized } => {
                let shapes: Vec<&[usize]> = args.iter().map(|a| a.shape()).collect();
                let b = graph
                    .batch_of(&shapes)
                    .unwrap_or_else(|e| panic!("GraphModule: {e}"));
                sized
                    .lock()
                    .get_or_try_insert(b, || graph.instantiate(b))
                    .unwrap_or_else(|e| panic!("GraphModule: {e}"))
            }
        }
    }

    /// Runs the graph on `args` (one per graph argument), recording autograd.
    #[track_caller]
    pub fn forward_all(&self, args: &[Tensor]) -> Vec<Tensor> {
        let g = self.graph_for(args);
        let weights: HashMap<ValueId, &Tensor> =
            self.weights.iter().map(|(id, _, t, _)| (*id, t)).collect();
        let mut values: Vec<Option<Tensor>> = vec![None; g.id_bound()];
        for i in &g.inputs {
            let v = match &i.kind {
                InputKind::Arg(k) => args
                    .get(*k)
                    .unwrap_or_else(|| {
                        panic!(
                            "GraphModule: {} arguments, the graph reads argument {k}",
                            args.len()
                        )
                    })
                    .clone(),
                _ => match (weights.get(&i.id), &i.value) {
                    (Some(w), _) => (*w).clone(),
                    (None, Some(v)) => Tensor::from_owned_operand(v),
                    (None, None) => panic!("GraphModule: input %{} has no value", i.id),
                },
            };
            if v.shape() != &i.shape[..] || v.dtype() != i.dtype {
                panic!(
                    "GraphModule: input %{} is {}{:?}, the graph takes {}{:?}",
                    i.id,
                    v.dtype(),
                    v.shape(),
                    i.dtype,
                    &i.shape[..]
                );
            }
            values[i.id as usize] = Some(v);
        }
        for n in &g.nodes {
            let operands: Vec<&Tensor> = n
                .args
                .iter()
                .map(|&a| {
                    values[a as usize]
                        .as_ref()
                        .expect("operands defined before use")
                })
                .collect();
            values[n.id as usize] = Some(dispatch(n.op.clone(), &operands));
        }
        g.outputs
            .iter()
            .map(|&o| values[o as usize].clone().expect("outputs defined"))
            .collect()
    }
}

impl ModuleBase for GraphModule {
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        self.weights
            .iter()
            .filter(|w| w.3)
            .map(|(_, n, t, _)| (n.clone(), t.clone()))
            .collect()
    }

    fn own_buffers(&self) -> Vec<(String, Tensor)> {
        self.weights
            .iter()
            .filter(|w| !w.3)
            .map(|(_, n, t, _)| (n.clone(), t.clone()))
            .collect()
    }

    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }

    fn extra_repr(&self) -> String {
        let nodes = match &self.form {
            Form::Fixed(g) => g.nodes.len(),
            Form::Dynamic { graph, .. } => graph.graph().nodes.len(),
        };
        format!("nodes={nodes}, weights={}", self.weights.len())
    }
}

impl std::fmt::Debug for GraphModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.tree())
    }
}

impl Module for GraphModule {
    /// The graph's first output for a graph of one argument.
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_all(std::slice::from_ref(x)).remove(0)
    }
}

//! Runs a compiled graph on tensors: [`kiln_runtime::executor`] over the tensors of a compiled
//! function. The runtime's executor owns the planned buffers and runs the schedule; this
//! layer copies the arguments and the `.grad` slots the graph reads in, hands the outputs out
//! as tensors over the buffers, and sets the gradient slots the function sets.
//!
//! The first call allocates the buffers; later calls allocate nothing (the output and
//! gradient tensors over the buffers are made once with them). Results handed out (outputs
//! returned by [`Executable::run`], gradients in `.grad` slots) live in the executor's
//! buffers. A result still referenced elsewhere when the next call starts (a loss kept from
//! the last step, a gradient someone holds) is left alone: that call first moves to fresh
//! buffers, so what the caller holds never changes under it.

use kiln_core::cpu::copy_into;
use kiln_core::operand::Operand;
use kiln_core::trace::{GradTarget, Graph, Leaf};
use kiln_core::Tensor;
use kiln_runtime::executor::{Buffers, Feeds};
use kiln_runtime::inplace::InPlace;
use kiln_runtime::memplan::MemoryPlan;
use parking_lot::Mutex;

pub use kiln_runtime::executor::RunError;

/// A graph prepared for repeated execution over planned buffers.
pub struct Executable {
    exe: kiln_runtime::Executable,
    /// The buffers and the tensors handed out over them, made at the first call.
    held: Mutex<Option<Held>>,
}

/// One set of buffers and the tensors over them that calls hand out.
struct Held {
    bufs: Buffers,
    /// Per value id: its tensor, for outputs and gradient values.
    values: Vec<Option<Tensor>>,
    /// Per gradient slot that gets a copy: its tensor.
    grad_copies: Vec<Option<Tensor>>,
}

/// The tensors a call reads: its arguments and the leaves' current gradients.
struct TensorFeeds<'a>(&'a [Tensor]);

impl Feeds for TensorFeeds<'_> {
    fn arg(&self, k: usize) -> Option<Operand<'_>> {
        self.0.get(k).map(Tensor::operand)
    }

    fn grad(&self, leaf: &Leaf, f: &mut dyn FnMut(Operand<'_>)) {
        let grad = leaf_tensor(leaf).grad().unwrap_or_else(|| {
            panic!(
                "compiled function: the gradient of a tensor of shape {:?} was set when the \
                 function was traced but is empty now; zero_grad inside the compiled function, \
                 or keep the gradients set between calls",
                leaf.shape()
            )
        });
        f(grad.operand())
    }
}

/// The tensor behind a leaf of a traced graph.
fn leaf_tensor(leaf: &Leaf) -> &Tensor {
    leaf.get::<Tensor>()
        .expect("a traced graph's leaves are tensors")
}

impl Executable {
    /// Prepares `graph` for execution: plans its memory (buffers are allocated at the first
    /// call).
    pub fn new(graph: Graph) -> Executable {
        Executable {
            exe: kiln_runtime::Executable::new(graph),
            held: Mutex::new(None),
        }
    }

    /// The graph this runs.
    pub fn graph(&self) -> &Graph {
        self.exe.graph()
    }

    /// The memory plan.
    pub fn plan(&self) -> &MemoryPlan {
        self.exe.plan()
    }

    /// Per node, the buffer it writes in place, if any.
    pub fn in_place(&self) -> &[Option<InPlace>] {
        self.exe.in_place()
    }

    /// Runs the graph on `args` and returns its outputs. State updates and gradient slots are
    /// written before it returns. The outputs are the executor's own result tensors: kept by
    /// the caller, they stay as they are (the next call moves to fresh buffers).
    ///
    /// Panics, like the eager ops would, when the data is invalid for an op (an index out of
    /// range); [`Executable::try_run`] returns that as an error instead.
    #[track_caller]
    pub fn run(&self, args: &[Tensor]) -> Vec<Tensor> {
        match self.try_run(args) {
            Ok(outputs) => outputs,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Executable::run`], returning an error instead of panicking when the data is invalid
    /// for an op (the values of an index: a graph served to the outside gets its indices from
    /// requests). The run stops at the refusing node: gradient slots and state copied back at
    /// the end are not written (an inference graph changes nothing).
    pub fn try_run(&self, args: &[Tensor]) -> Result<Vec<Tensor>, RunError> {
        let mut held = self.held.lock();
        let h = self.execute(&mut held, args)?;
        Ok(self
            .graph()
            .outputs
            .iter()
            .map(|o| h.tensor(*o).clone())
            .collect())
    }

    /// Runs the graph on `args` and copies its outputs into `outputs` (tensors of the
    /// outputs' shapes, e.g. from an earlier [`Executable::run`]). After the first call this
    /// allocates nothing: arguments are copied into planned buffers, every kernel writes
    /// into an existing buffer, state is updated in place or by a copy, and each `.grad` slot
    /// is set to the executor's gradient tensor for it, which the next call overwrites unless
    /// something else still holds it then (that call then moves to fresh buffers first).
    pub fn run_into(&self, args: &[Tensor], outputs: &mut [Tensor]) {
        assert_eq!(
            outputs.len(),
            self.graph().outputs.len(),
            "run_into: {} output tensors for {} outputs",
            outputs.len(),
            self.graph().outputs.len()
        );
        let mut held = self.held.lock();
        let h = match self.execute(&mut held, args) {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        };
        for (out, o) in outputs.iter().zip(&self.graph().outputs) {
            copy_into(out.operand(), h.bufs.value(*o).operand());
        }
    }

    /// One call: buffers made or moved as needed, the runtime's run, then the gradient slots.
    fn execute<'h>(
        &self,
        slot: &'h mut Option<Held>,
        args: &[Tensor],
    ) -> Result<&'h Held, RunError> {
        let fresh = match slot {
            Some(h) => h.escaped(self),
            None => true,
        };
        if fresh {
            *slot = Some(Held::new(self));
        }
        let h = slot.as_ref().expect("buffers made");
        self.exe.run(&h.bufs, &TensorFeeds(args))?;
        for (k, go) in self.graph().grads.iter().enumerate() {
            let value = go.value.map(|v| match &h.grad_copies[k] {
                Some(copy) => copy.clone(),
                None => h.tensor(v).clone(),
            });
            match &go.target {
                GradTarget::Leaf(leaf) => leaf_tensor(leaf).set_grad(value),
                GradTarget::Arg(i) => args[*i].set_grad(value),
            }
        }
        Ok(h)
    }
}

impl Held {
    /// Fresh buffers, and the tensors over them that calls hand out.
    fn new(exe: &Executable) -> Held {
        let mut bufs = exe.exe.buffers();
        let g = exe.graph();
        let mut values: Vec<Option<Tensor>> = vec![None; g.id_bound()];
        for &v in g
            .outputs
            .iter()
            .chain(g.grads.iter().filter_map(|go| go.value.as_ref()))
        {
            values[v as usize] = Some(Tensor::from_owned_operand(bufs.value(v)));
        }
        let grad_copies = (0..g.grads.len())
            .map(|k| {
                exe.exe.grad_copy()[k]
                    .then(|| bufs.grad_value(&exe.exe, k))
                    .flatten()
                    .map(Tensor::from_owned_operand)
            })
            .collect();
        // The tensors made here are this executable's own references to the buffers.
        bufs.mark_held();
        Held {
            bufs,
            values,
            grad_copies,
        }
    }

    fn tensor(&self, id: kiln_core::trace::ValueId) -> &Tensor {
        self.values[id as usize]
            .as_ref()
            .unwrap_or_else(|| panic!("executor: value %{id} is not handed out"))
    }

    /// True when a result handed out by an earlier call is still referenced beyond this
    /// executable and its gradient slots (so the buffers must not be written again).
    fn escaped(&self, exe: &Executable) -> bool {
        let g = exe.graph();
        let slots_of = |v| {
            g.grads
                .iter()
                .zip(&self.grad_copies)
                .filter(|(go, copy)| go.value == Some(v) && copy.is_none())
                .count()
        };
        let held = |t: &Tensor, slots: usize| t.handle_count() > 1 + slots;
        for &v in g
            .outputs
            .iter()
            .chain(g.grads.iter().filter_map(|go| go.value.as_ref()))
        {
            if exe.plan().buffer_of(v).is_some() && held(self.tensor(v), slots_of(v)) {
                return true;
            }
        }
        self.grad_copies.iter().flatten().any(|t| held(t, 1)) || self.bufs.escaped()
    }
}

//! The program of a fused elementwise op ([`super::Op::Fused`]): a straight-line sequence of
//! elementwise steps over registers, produced by the graph compiler's fusion pass (eager code
//! never builds one). Registers `0..n_inputs` hold the op's inputs, each broadcast to the output
//! shape; step `k` writes register `n_inputs + k`; the last register is the result.
//! All arithmetic is f32; bool inputs and comparison results are 0.0 / 1.0.
//!
//! A program may also *store* step registers into some of its inputs, in place: an optimizer
//! step computes the new moments and the new parameter in one loop, writing the moments back
//! into their state tensors as it goes (the graph compiler's multi-output fusion). Each tile
//! is read before anything is written to it, so a store may target an input the program reads.
//!
//! Or it may end in a *reduction epilogue*: the result summed over some dims as the tiles are
//! computed (f64 accumulators, like the eager sum), so the elementwise result is never
//! written out — e.g. a layer norm's weight gradient `Σ g·x̂`. The op's output is then the
//! reduced shape; the elementwise iteration shape is the inputs' broadcast shape.

use super::{Op, UnaryOp};

/// One step of a [`FusedProgram`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum FusedStep {
    /// An elementwise unary primitive (exp, affine, relu, …) of register `x`.
    Unary {
        /// The primitive (not `logical_not`: programs compute in f32).
        op: UnaryOp,
        /// Operand register.
        x: u16,
    },
    /// An elementwise binary primitive (add, mul, compare, …) of registers `a`, `b`.
    Binary {
        /// The primitive (must satisfy `Op::is_binary`).
        op: Op,
        /// Left operand register.
        a: u16,
        /// Right operand register.
        b: u16,
    },
    /// `where(c, a, b)` over registers.
    Where {
        /// Condition register (non-zero = true).
        c: u16,
        /// Value where true.
        a: u16,
        /// Value where false.
        b: u16,
    },
    /// A copy of register `x` (a cast to f32 of an f32 or bool value).
    Copy {
        /// Operand register.
        x: u16,
    },
}

impl FusedStep {
    /// The registers this step reads (repeats where a step reads one twice).
    pub fn operands(&self) -> [u16; 3] {
        match *self {
            FusedStep::Unary { x, .. } | FusedStep::Copy { x } => [x; 3],
            FusedStep::Binary { a, b, .. } => [a, b, b],
            FusedStep::Where { c, a, b } => [c, a, b],
        }
    }
}

/// A register written back into an input of a [`FusedProgram`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FusedStore {
    /// The step register stored.
    pub reg: u16,
    /// The input overwritten with it (a dense f32 tensor of the output's shape).
    pub input: u16,
}

/// The reduction epilogue of a [`FusedProgram`]: the result summed over `dims`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FusedReduce {
    /// Dims of the elementwise result summed over (sorted, distinct).
    pub dims: super::Dims,
    /// Keep the summed dims as size 1.
    pub keepdim: bool,
}

/// A fused elementwise computation; see the module docs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FusedProgram {
    /// Number of input registers.
    pub n_inputs: u16,
    /// Steps in order.
    pub steps: Vec<FusedStep>,
    /// Registers written into inputs in place, besides the result.
    #[serde(default)]
    pub stores: Vec<FusedStore>,
    /// A sum of the result over some dims, computed as it is produced.
    #[serde(default)]
    pub reduce: Option<FusedReduce>,
}

impl FusedProgram {
    /// Checks register references and step ops; the message names the first problem.
    pub fn validate(&self) -> Result<(), String> {
        if self.steps.is_empty() {
            return Err("fused: empty program".into());
        }
        for (k, s) in self.steps.iter().enumerate() {
            let defined = self.n_inputs as usize + k;
            match s {
                FusedStep::Unary { op, .. } if matches!(op, UnaryOp::LogicalNot) => {
                    return Err(format!(
                        "fused: step {k}: {} is not a fusible unary op",
                        op.name()
                    ));
                }
                FusedStep::Binary { op, .. }
                    if !op.is_binary() && !matches!(op, Op::GeluBackward) =>
                {
                    return Err(format!("fused: step {k}: {} is not a binary op", op.name()));
                }
                _ => {}
            }
            if let Some(r) = s.operands().iter().find(|&&r| r as usize >= defined) {
                return Err(format!(
                    "fused: step {k} reads register {r} before it is written"
                ));
            }
        }
        let n_regs = self.n_inputs as usize + self.steps.len();
        for (k, st) in self.stores.iter().enumerate() {
            if (st.reg as usize) < self.n_inputs as usize || st.reg as usize >= n_regs {
                return Err(format!(
                    "fused: store {k} reads register {}, not a step's",
                    st.reg
                ));
            }
            if st.input >= self.n_inputs {
                return Err(format!(
                    "fused: store {k} writes input {} of {}",
                    st.input, self.n_inputs
                ));
            }
            if self.stores[..k].iter().any(|o| o.input == st.input) {
                return Err(format!("fused: input {} is stored twice", st.input));
            }
        }
        if let Some(r) = &self.reduce {
            if !self.stores.is_empty() {
                return Err("fused: a program with a reduction epilogue cannot store".into());
            }
            if r.dims.is_empty() || r.dims.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!(
                    "fused: reduction dims {:?} must be sorted, distinct and not empty",
                    r.dims
                ));
            }
        }
        Ok(())
    }
}

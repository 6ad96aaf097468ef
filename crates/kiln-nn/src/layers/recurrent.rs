//! Recurrent layers: `LSTM` and `GRU` (multi-layer, optionally bidirectional and batch-first),
//! with PyTorch's parameter names, gate order and equations.

use super::{named, new_param, TrainingFlag};
use crate::{Module, ModuleBase};
use kiln_core::nn::functional as F;
use kiln_core::Tensor;

/// Options of [`LSTM`] and [`GRU`] (PyTorch's keyword arguments and defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecurrentConfig {
    /// Number of stacked layers (1).
    pub num_layers: usize,
    /// Learn `bias_ih` and `bias_hh` (true).
    pub bias: bool,
    /// Inputs and outputs are `[batch, seq, feature]` instead of `[seq, batch, feature]`
    /// (false). The hidden states stay `[layers·directions, batch, hidden]` either way.
    pub batch_first: bool,
    /// Dropout on the outputs of every layer but the last, in training mode (0).
    pub dropout: f64,
    /// Also run each layer backwards over the sequence and concatenate (false).
    pub bidirectional: bool,
}

impl Default for RecurrentConfig {
    fn default() -> Self {
        RecurrentConfig {
            num_layers: 1,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            bidirectional: false,
        }
    }
}

impl RecurrentConfig {
    /// Sets the number of layers.
    pub fn num_layers(mut self, v: usize) -> Self {
        self.num_layers = v;
        self
    }
    /// Sets whether there are biases.
    pub fn bias(mut self, v: bool) -> Self {
        self.bias = v;
        self
    }
    /// Sets batch-first layout.
    pub fn batch_first(mut self, v: bool) -> Self {
        self.batch_first = v;
        self
    }
    /// Sets the dropout between layers.
    pub fn dropout(mut self, v: f64) -> Self {
        self.dropout = v;
        self
    }
    /// Sets bidirectionality.
    pub fn bidirectional(mut self, v: bool) -> Self {
        self.bidirectional = v;
        self
    }
}

/// The weights of one layer in one direction.
struct Cell {
    suffix: String,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Option<Tensor>,
    b_hh: Option<Tensor>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Lstm,
    Gru,
}

impl Kind {
    fn gates(self) -> usize {
        match self {
            Kind::Lstm => 4,
            Kind::Gru => 3,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Lstm => "LSTM",
            Kind::Gru => "GRU",
        }
    }
}

/// What LSTM and GRU share: parameters, layer loop, directions, layouts.
struct Recurrent {
    kind: Kind,
    input_size: usize,
    hidden_size: usize,
    config: RecurrentConfig,
    cells: Vec<Cell>,
    training: TrainingFlag,
}

impl Recurrent {
    fn new(
        kind: Kind,
        input_size: usize,
        hidden_size: usize,
        config: RecurrentConfig,
    ) -> Recurrent {
        if config.num_layers == 0 || hidden_size == 0 {
            panic!(
                "{}: num_layers and hidden_size must be positive, got {} and {hidden_size}",
                kind.name(),
                config.num_layers
            );
        }
        if !(0.0..=1.0).contains(&config.dropout) {
            panic!(
                "{}: dropout must be in [0, 1], got {}",
                kind.name(),
                config.dropout
            );
        }
        let dirs = if config.bidirectional { 2 } else { 1 };
        let g = kind.gates() * hidden_size;
        let bound = 1.0 / (hidden_size as f64).sqrt();
        let param = |shape: &[usize]| {
            let t = new_param(shape);
            crate::init::uniform_(&t, -bound, bound);
            t
        };
        let mut cells = Vec::new();
        for layer in 0..config.num_layers {
            let in_l = if layer == 0 {
                input_size
            } else {
                hidden_size * dirs
            };
            for d in 0..dirs {
                cells.push(Cell {
                    suffix: format!("_l{layer}{}", if d == 1 { "_reverse" } else { "" }),
                    w_ih: param(&[g, in_l]),
                    w_hh: param(&[g, hidden_size]),
                    b_ih: config.bias.then(|| param(&[g])),
                    b_hh: config.bias.then(|| param(&[g])),
                });
            }
        }
        Recurrent {
            kind,
            input_size,
            hidden_size,
            config,
            cells,
            training: TrainingFlag::new(),
        }
    }

    fn dirs(&self) -> usize {
        if self.config.bidirectional {
            2
        } else {
            1
        }
    }

    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for c in &self.cells {
            let s = &c.suffix;
            let entries = [
                ("weight_ih", Some(&c.w_ih)),
                ("weight_hh", Some(&c.w_hh)),
                ("bias_ih", c.b_ih.as_ref()),
                ("bias_hh", c.b_hh.as_ref()),
            ];
            out.extend(
                named(&entries)
                    .into_iter()
                    .map(|(n, t)| (format!("{n}{s}"), t)),
            );
        }
        out
    }

    /// One step of a cell: the input projection `xp` `[B, G·H]` (bias included), previous
    /// `h` (and `c` for the LSTM) → new `h` (and `c`).
    fn step(
        &self,
        cell: &Cell,
        xp: &Tensor,
        h: &Tensor,
        c: Option<&Tensor>,
    ) -> (Tensor, Option<Tensor>) {
        let hsz = self.hidden_size;
        let hp = F::linear(h, &cell.w_hh, cell.b_hh.as_ref());
        match self.kind {
            Kind::Lstm => {
                // Gate order i, f, g, o.
                let gates = xp + &hp;
                let i = gates.narrow(1, 0, hsz).sigmoid();
                let f = gates.narrow(1, hsz, hsz).sigmoid();
                let g = gates.narrow(1, 2 * hsz, hsz).tanh();
                let o = gates.narrow(1, 3 * hsz, hsz).sigmoid();
                let c = c.expect("LSTM step needs a cell state");
                let c_new = &(&f * c) + &(&i * &g);
                let h_new = &o * &c_new.tanh();
                (h_new, Some(c_new))
            }
            Kind::Gru => {
                // Gate order r, z, n; n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)).
                let r = (&xp.narrow(1, 0, hsz) + &hp.narrow(1, 0, hsz)).sigmoid();
                let z = (&xp.narrow(1, hsz, hsz) + &hp.narrow(1, hsz, hsz)).sigmoid();
                let n = (&xp.narrow(1, 2 * hsz, hsz) + &(&r * &hp.narrow(1, 2 * hsz, hsz))).tanh();
                // (1 − z) ⊙ n + z ⊙ h
                let h_new = &n + &(&z * &(h - &n));
                (h_new, None)
            }
        }
    }

    /// Runs the stack. `x` is `[T, B, in]` or `[B, T, in]` (batch-first), or unbatched
    /// `[T, in]`; `h0`/`c0` are `[layers·dirs, B, H]` (or `[layers·dirs, H]` unbatched).
    fn run(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> (Tensor, Tensor, Option<Tensor>) {
        let name = self.kind.name();
        let unbatched = match x.rank() {
            2 => true,
            3 => false,
            _ => panic!(
                "{name}: expected a 3-D (batched) or 2-D (unbatched) input, got shape {:?}",
                x.shape()
            ),
        };
        if x.shape()[x.rank() - 1] != self.input_size {
            panic!(
                "{name}: input feature size must be input_size = {}, got shape {:?}",
                self.input_size,
                x.shape()
            );
        }
        // Time-major [T, B, in] from here on.
        let seq = if unbatched {
            x.unsqueeze(1)
        } else if self.config.batch_first {
            x.transpose(0, 1)
        } else {
            x.clone()
        };
        let (t_len, batch) = (seq.shape()[0], seq.shape()[1]);
        let (layers, dirs, hsz) = (self.config.num_layers, self.dirs(), self.hidden_size);
        let state_shape = [layers * dirs, batch, hsz];
        let init = |s: Option<&Tensor>, what: &str| -> Tensor {
            match s {
                None => Tensor::zeros(state_shape, x.dtype()),
                Some(s) => {
                    let s = if unbatched { s.unsqueeze(1) } else { s.clone() };
                    if s.shape() != state_shape {
                        panic!(
                            "{name}: expected {what} of shape {:?}, got {:?}",
                            if unbatched {
                                vec![layers * dirs, hsz]
                            } else {
                                state_shape.to_vec()
                            },
                            s.shape()
                        );
                    }
                    s
                }
            }
        };
        let h0 = init(h0, "h0");
        let c0 = (self.kind == Kind::Lstm).then(|| init(c0, "c0"));
        let mut layer_in = seq;
        let mut h_n = Vec::with_capacity(layers * dirs);
        let mut c_n = Vec::with_capacity(layers * dirs);
        for layer in 0..layers {
            let mut dir_outs = Vec::with_capacity(dirs);
            for d in 0..dirs {
                let k = layer * dirs + d;
                let cell = &self.cells[k];
                // The input projection of every step in one matrix product.
                let xp = F::linear(&layer_in, &cell.w_ih, cell.b_ih.as_ref());
                let mut h = h0.i(k);
                let mut c = c0.as_ref().map(|c| c.i(k));
                let mut outs: Vec<Tensor> = Vec::with_capacity(t_len);
                let steps: Box<dyn Iterator<Item = usize>> = if d == 0 {
                    Box::new(0..t_len)
                } else {
                    Box::new((0..t_len).rev())
                };
                for t in steps {
                    let (hn, cn) = self.step(cell, &xp.i(t), &h, c.as_ref());
                    h = hn;
                    c = cn;
                    outs.push(h.clone());
                }
                if d == 1 {
                    outs.reverse();
                }
                dir_outs.push(Tensor::stack(&outs, 0));
                h_n.push(h);
                if let Some(c) = c {
                    c_n.push(c);
                }
            }
            layer_in = Tensor::cat(&dir_outs, 2);
            let p = self.config.dropout;
            if layer + 1 < layers && p > 0.0 && self.training.get() {
                layer_in = F::dropout(&layer_in, p, true);
            }
        }
        let mut out = layer_in;
        let mut h_n = Tensor::stack(&h_n, 0);
        let mut c_n = (!c_n.is_empty()).then(|| Tensor::stack(&c_n, 0));
        if unbatched {
            out = out.squeeze(1);
            h_n = h_n.squeeze(1);
            c_n = c_n.map(|c| c.squeeze(1));
        } else if self.config.batch_first {
            out = out.transpose(0, 1);
        }
        (out, h_n, c_n)
    }
}

macro_rules! recurrent_module {
    ($name:ident) => {
        impl $name {
            /// Size of each input vector.
            pub fn input_size(&self) -> usize {
                self.inner.input_size
            }

            /// Size of the hidden state.
            pub fn hidden_size(&self) -> usize {
                self.inner.hidden_size
            }

            /// The options.
            pub fn config(&self) -> &RecurrentConfig {
                &self.inner.config
            }
        }

        impl ModuleBase for $name {
            fn own_parameters(&self) -> Vec<(String, Tensor)> {
                self.inner.own_parameters()
            }
            fn set_own_training(&self, training: bool) {
                self.inner.training.set(training)
            }
            fn own_training(&self) -> Option<bool> {
                Some(self.inner.training.get())
            }
            fn as_dyn(&self) -> &dyn ModuleBase {
                self
            }
        }
    };
}

/// A multi-layer long short-term memory network, like `torch.nn.LSTM`.
///
/// Parameters per layer `k` (and `_reverse` for the backward direction): `weight_ih_l{k}`
/// `[4H, in]`, `weight_hh_l{k}` `[4H, H]`, `bias_ih_l{k}` and `bias_hh_l{k}` `[4H]`, gates
/// stacked in the order i, f, g, o; all U(−1/√H, 1/√H) initially.
///
/// `forward(x)` returns the output sequence; [`LSTM::forward_with_state`] also takes and
/// returns `(h, c)`.
#[allow(clippy::upper_case_acronyms)]
pub struct LSTM {
    inner: Recurrent,
}

impl LSTM {
    /// A one-layer LSTM over `[seq, batch, input_size]`.
    pub fn new(input_size: usize, hidden_size: usize) -> LSTM {
        LSTM::with_config(input_size, hidden_size, RecurrentConfig::default())
    }

    /// An LSTM with the given options.
    pub fn with_config(input_size: usize, hidden_size: usize, config: RecurrentConfig) -> LSTM {
        LSTM {
            inner: Recurrent::new(Kind::Lstm, input_size, hidden_size, config),
        }
    }

    /// Runs the sequence from `state = (h0, c0)` (zeros when `None`), each
    /// `[layers·directions, batch, hidden]`. Returns the output sequence
    /// (`[seq, batch, directions·hidden]`, or batch-first) and the final `(h_n, c_n)`.
    pub fn forward_with_state(
        &self,
        x: &Tensor,
        state: Option<(Tensor, Tensor)>,
    ) -> (Tensor, (Tensor, Tensor)) {
        let (h0, c0) = match &state {
            Some((h, c)) => (Some(h), Some(c)),
            None => (None, None),
        };
        let (out, h, c) = self.inner.run(x, h0, c0);
        (out, (h, c.expect("LSTM returns a cell state")))
    }
}

recurrent_module!(LSTM);

impl Module for LSTM {
    /// The output sequence from zero initial states.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, self.inner.run(x, None, None).0)
    }
}

/// A multi-layer gated recurrent unit network, like `torch.nn.GRU`.
///
/// Parameters per layer `k` (and `_reverse`): `weight_ih_l{k}` `[3H, in]`, `weight_hh_l{k}`
/// `[3H, H]`, `bias_ih_l{k}`, `bias_hh_l{k}` `[3H]`, gates in the order r, z, n with PyTorch's
/// `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`, `h' = (1 − z) ⊙ n + z ⊙ h`; all
/// U(−1/√H, 1/√H) initially.
#[allow(clippy::upper_case_acronyms)]
pub struct GRU {
    inner: Recurrent,
}

impl GRU {
    /// A one-layer GRU over `[seq, batch, input_size]`.
    pub fn new(input_size: usize, hidden_size: usize) -> GRU {
        GRU::with_config(input_size, hidden_size, RecurrentConfig::default())
    }

    /// A GRU with the given options.
    pub fn with_config(input_size: usize, hidden_size: usize, config: RecurrentConfig) -> GRU {
        GRU {
            inner: Recurrent::new(Kind::Gru, input_size, hidden_size, config),
        }
    }

    /// Runs the sequence from `h0` (zeros when `None`), `[layers·directions, batch, hidden]`.
    /// Returns the output sequence and the final hidden state `h_n`.
    pub fn forward_with_state(&self, x: &Tensor, h0: Option<Tensor>) -> (Tensor, Tensor) {
        let (out, h, _) = self.inner.run(x, h0.as_ref(), None);
        (out, h)
    }
}

recurrent_module!(GRU);

impl Module for GRU {
    /// The output sequence from a zero initial state.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, self.inner.run(x, None, None).0)
    }
}

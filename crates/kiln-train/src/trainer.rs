//! The `Trainer`: Keras' `fit` / `evaluate` / `predict` over a [`Module`], an optimizer and
//! data loaders, with metrics, callbacks, gradient accumulation and clipping, and resuming.

use crate::callbacks::{Callback, TrainContext};
use crate::checkpoint::{self, Snapshot};
use crate::error::TrainError;
use crate::history::{History, Logs};
use crate::metrics::{Meter, Metric};
use crate::progress::{self, Progress, ProgressMode};
use kiln_core::nn::functional as F;
use kiln_core::random::with_global;
use kiln_core::{no_grad, Tensor};
use kiln_data::{Collate, DataLoader, Dataset};
use kiln_graph::{CompileOptions, GraphCache};
use kiln_nn::optim::{clip_grad_norm, Optimizer};
use kiln_nn::{MultiInput, StateDict};
use serde_json::{Map, Value};
use std::path::Path;

/// One batch as the `Trainer` sees it: the model's inputs (one tensor for a [`Module`],
/// several for a [`MultiInput`] model) and the target.
///
/// [`Module`]: kiln_nn::Module
pub type Batch = (Vec<Tensor>, Tensor);

/// What a [`DataLoader`]'s batches can be for the `Trainer`: `(input, target)` for a
/// single-input model, `(inputs, target)` for a model of several inputs (the batches of a
/// [`MultiInputDataset`](kiln_data::MultiInputDataset)).
pub trait IntoBatch {
    /// The inputs and the target.
    fn into_batch(self) -> Batch;
}

impl IntoBatch for (Tensor, Tensor) {
    fn into_batch(self) -> Batch {
        (vec![self.0], self.1)
    }
}

impl IntoBatch for (Vec<Tensor>, Tensor) {
    fn into_batch(self) -> Batch {
        self
    }
}

/// Anything that yields `(inputs, targets)` batches per epoch; implemented for [`DataLoader`].
pub trait BatchSource {
    /// Batches per epoch.
    fn num_batches(&self) -> usize;
    /// The batches of `epoch` (deterministic for a given epoch).
    fn batches(&self, epoch: u64) -> Box<dyn Iterator<Item = Batch> + '_>;
    /// `(samples, batch size)` when known: they tell why a source has no batches (no data,
    /// or fewer samples than one batch with the incomplete batch dropped).
    fn samples_and_batch_size(&self) -> Option<(usize, usize)> {
        None
    }
}

impl<D, C> BatchSource for DataLoader<D, C>
where
    D: Dataset + Send + Sync + 'static,
    C: Collate<D::Item> + 'static,
    C::Output: IntoBatch + Send + 'static,
{
    fn num_batches(&self) -> usize {
        self.len()
    }
    fn batches(&self, epoch: u64) -> Box<dyn Iterator<Item = Batch> + '_> {
        Box::new(self.iter_epoch(epoch).map(IntoBatch::into_batch))
    }
    fn samples_and_batch_size(&self) -> Option<(usize, usize)> {
        Some((self.dataset().len(), self.batch_size()))
    }
}

/// [`TrainError::EmptyData`] when `source` has no batches.
fn check_not_empty(data: &'static str, source: &dyn BatchSource) -> Result<(), TrainError> {
    if source.num_batches() > 0 {
        return Ok(());
    }
    Err(TrainError::EmptyData {
        data,
        // Samples but no batch: fewer than one batch, dropped (`drop_last`).
        dropped: source
            .samples_and_batch_size()
            .filter(|&(samples, _)| samples > 0),
    })
}

/// [`TrainError::Config`] when a batch has a different number of inputs than the model takes
/// (a two-input model fed a single-input dataset, or the reverse).
fn check_inputs(model: &dyn MultiInput, inputs: &[Tensor]) -> Result<(), TrainError> {
    match model.num_inputs() {
        Some(n) if n != inputs.len() => Err(TrainError::Config(format!(
            "{} takes {n} input tensor(s), but the data's batches have {}: a model of \
             several inputs needs batches of (inputs, target), e.g. from a MultiInputDataset",
            model.type_name(),
            inputs.len()
        ))),
        _ => Ok(()),
    }
}

/// A loss function of (model output, target).
pub type LossFn = Box<dyn Fn(&Tensor, &Tensor) -> Tensor + Send + Sync>;

/// Runs training loops. Defaults: cross-entropy loss, accuracy metric, automatic progress
/// display, no accumulation or clipping.
pub struct Trainer {
    loss: LossFn,
    metrics: Vec<Metric>,
    callbacks: Vec<Box<dyn Callback>>,
    grad_accumulation: usize,
    clip_grad_norm: Option<f64>,
    progress: ProgressMode,
    history: History,
    global_step: u64,
    /// Callback states and tensors read by [`Trainer::resume_from`], applied when `fit` starts.
    pending_states: Option<(Map<String, Value>, StateDict)>,
    compile: bool,
    notes: Vec<String>,
    /// Set when a `fit` ends: its notes stay readable, and the next `resume_from` or `fit`
    /// starts a new list.
    notes_closed: bool,
}

impl Default for Trainer {
    fn default() -> Self {
        Trainer::new()
    }
}

impl Trainer {
    /// A trainer for classification (cross-entropy, accuracy).
    pub fn new() -> Trainer {
        Trainer {
            loss: Box::new(F::cross_entropy),
            metrics: vec![Metric::Accuracy],
            callbacks: Vec::new(),
            grad_accumulation: 1,
            clip_grad_norm: None,
            progress: ProgressMode::Auto,
            history: History::default(),
            global_step: 0,
            pending_states: None,
            compile: false,
            notes: Vec::new(),
            notes_closed: false,
        }
    }

    /// Runs each training step (forward, loss, backward, optimizer step) as one
    /// compiled graph (`kiln::compile`) with a symbolic batch dim: traced once per run, at
    /// the first batch, and planned once per batch size (the last batch of an epoch may be
    /// smaller). Needs `grad_accumulation(1)`; evaluation stays eager.
    pub fn compile(mut self, on: bool) -> Self {
        self.compile = on;
        self
    }

    /// Uses `loss(output, target)` instead of cross-entropy.
    pub fn loss(
        mut self,
        loss: impl Fn(&Tensor, &Tensor) -> Tensor + Send + Sync + 'static,
    ) -> Self {
        self.loss = Box::new(loss);
        self
    }

    /// Replaces the metrics.
    pub fn metrics(mut self, metrics: &[Metric]) -> Self {
        self.metrics = metrics.to_vec();
        self
    }

    /// Adds a callback.
    pub fn callback(mut self, cb: impl Callback + 'static) -> Self {
        self.callbacks.push(Box::new(cb));
        self
    }

    /// Steps the optimizer every `n` batches, averaging their gradients.
    pub fn grad_accumulation(mut self, n: usize) -> Self {
        self.grad_accumulation = n.max(1);
        self
    }

    /// Clips the global gradient 2-norm to `max_norm` before each step.
    pub fn clip_grad_norm(mut self, max_norm: f64) -> Self {
        self.clip_grad_norm = Some(max_norm);
        self
    }

    /// How progress is shown.
    pub fn progress(mut self, mode: ProgressMode) -> Self {
        self.progress = mode;
        self
    }

    /// The history so far (includes epochs restored by [`Trainer::resume_from`]).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// What callbacks reported about the run during the last `fit` (also one that failed)
    /// and the `resume_from` before it: early stops, restored weights, recovered
    /// checkpoints. Also printed unless silent.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Drops the notes of a finished `fit` before new ones are added.
    fn open_notes(&mut self) {
        if std::mem::take(&mut self.notes_closed) {
            self.notes.clear();
        }
    }

    /// Loads a checkpoint directory written by `ModelCheckpoint`: model weights, optimizer
    /// state, random state, history and callback states; the next `fit` continues after the
    /// checkpoint's epoch. A directory that a crash left moved aside is recovered first (see
    /// [`checkpoint::recover`]).
    pub fn resume_from(
        &mut self,
        dir: &Path,
        model: &dyn MultiInput,
        opt: &mut dyn Optimizer,
    ) -> Result<usize, TrainError> {
        self.open_notes();
        if let Some(from) = checkpoint::recover(dir)? {
            let note = format!(
                "recovered checkpoint {} from {} (a previous run stopped while replacing it)",
                dir.display(),
                from.display()
            );
            progress::note(self.progress, &note);
            self.notes.push(note);
        }
        let loaded = checkpoint::load(dir)?;
        model.load_state_dict(&loaded.model, true)?;
        opt.load_state_dict(&loaded.optimizer)?;
        let s = loaded.snapshot;
        with_global(|g| g.set_state(s.rng.0, s.rng.1));
        self.global_step = s.global_step;
        self.history = s.history;
        self.pending_states = Some((s.callbacks, s.callback_tensors));
        Ok(s.epochs_done)
    }

    fn each_callback(
        callbacks: &mut [Box<dyn Callback>],
        ctx: &mut TrainContext,
        mut f: impl FnMut(&mut dyn Callback, &mut TrainContext) -> Result<(), TrainError>,
    ) -> Result<(), TrainError> {
        for cb in callbacks.iter_mut() {
            f(cb.as_mut(), ctx)?;
        }
        Ok(())
    }

    /// Trains for `epochs` epochs in total (a resumed trainer continues from its checkpoint's
    /// epoch), validating after each epoch when `val` is given. Returns the history.
    ///
    /// `model` is any [`Module`](kiln_nn::Module), or a [`MultiInput`] model whose batches
    /// carry several inputs.
    pub fn fit(
        &mut self,
        model: &dyn MultiInput,
        opt: &mut dyn Optimizer,
        train: &dyn BatchSource,
        val: Option<&dyn BatchSource>,
        epochs: usize,
    ) -> Result<History, TrainError> {
        self.open_notes();
        check_not_empty("training", train)?;
        if let Some(v) = val {
            check_not_empty("validation", v)?;
        }
        let start = self.history.epochs.len();
        let mut callbacks = std::mem::take(&mut self.callbacks);
        let mut ctx = TrainContext {
            model,
            optimizer: opt,
            epoch: start,
            epochs,
            global_step: self.global_step,
            stop_training: false,
            history: self.history.clone(),
            progress: self.progress,
            notes: std::mem::take(&mut self.notes),
        };
        let result = self.fit_inner(&mut ctx, train, val, start, &mut callbacks);
        self.callbacks = callbacks;
        // Kept also when the fit failed: they tell what happened before the error.
        self.notes = ctx.notes;
        self.notes_closed = true;
        result?;
        Ok(self.history.clone())
    }

    fn fit_inner(
        &mut self,
        ctx: &mut TrainContext,
        train: &dyn BatchSource,
        val: Option<&dyn BatchSource>,
        start: usize,
        callbacks: &mut [Box<dyn Callback>],
    ) -> Result<(), TrainError> {
        let epochs = ctx.epochs;
        if let Some((states, tensors)) = self.pending_states.take() {
            for cb in callbacks.iter_mut() {
                if let Some(s) = states.get(&cb.name()) {
                    cb.load_state(ctx, s)?;
                }
                let mine = tensors.strip_prefix(&tensor_prefix(cb.as_ref()));
                cb.load_state_tensors(ctx, &mine)?;
            }
        }
        Self::each_callback(callbacks, ctx, |cb, c| cb.on_train_begin(c))?;
        // One compiled step for the whole run: its batch dim is symbolic, so the last, smaller
        // batch of an epoch runs the same graph (a new plan, no re-trace), and later epochs
        // reuse both.
        let mut graphs = self.compile.then(|| {
            GraphCache::new(CompileOptions {
                dynamic_batch: true,
                ..CompileOptions::default()
            })
        });
        for epoch in start..epochs {
            // Also checked before the first epoch: a resumed callback may have stopped the
            // run already (an early stop recorded in the checkpoint).
            if ctx.stop_training {
                break;
            }
            ctx.epoch = epoch;
            Self::each_callback(callbacks, ctx, |cb, c| cb.on_epoch_begin(c))?;
            let (mut logs, progress) = self.train_epoch(ctx, train, callbacks, graphs.as_mut())?;
            if let Some(v) = val {
                for (k, x) in self.evaluate(ctx.model, v) {
                    logs.insert(format!("val_{k}"), x);
                }
            }
            logs.insert("lr".into(), ctx.optimizer.lr());
            progress.finish(epoch, epochs, &logs);
            Self::each_callback(callbacks, ctx, |cb, c| cb.on_epoch_end(c, &logs))?;
            let mut next = ctx.history.clone();
            next.epochs.push(logs.clone());
            let snapshot = Snapshot {
                epochs_done: epoch + 1,
                global_step: ctx.global_step,
                rng: with_global(|g| (g.seed(), g.offset())),
                callbacks: callbacks
                    .iter()
                    .filter_map(|cb| Some((cb.name(), cb.state()?)))
                    .collect(),
                callback_tensors: all_state_tensors(callbacks),
                history: next.clone(),
            };
            Self::each_callback(callbacks, ctx, |cb, c| cb.on_snapshot(c, &snapshot, &logs))?;
            ctx.history = next;
        }
        Self::each_callback(callbacks, ctx, |cb, c| cb.on_train_end(c))?;
        self.global_step = ctx.global_step;
        self.history = ctx.history.clone();
        Ok(())
    }

    fn train_epoch(
        &self,
        ctx: &mut TrainContext,
        train: &dyn BatchSource,
        callbacks: &mut [Box<dyn Callback>],
        mut graphs: Option<&mut GraphCache>,
    ) -> Result<(Logs, Progress), TrainError> {
        ctx.model.train();
        let n = train.num_batches();
        let mut progress = Progress::start(self.progress, ctx.epoch, ctx.epochs, n);
        let mut meter = Meter::new(&self.metrics);
        let accum = self.grad_accumulation;
        if self.compile && accum > 1 {
            return Err(TrainError::Config(
                "compile: gradient accumulation is not supported in compiled steps; use \
                 grad_accumulation(1) or train eagerly"
                    .into(),
            ));
        }
        if self.compile && self.clip_grad_norm.is_some() {
            return Err(TrainError::Config(
                "compile: clip_grad_norm reads the gradient norm on the host and cannot be \
                 traced yet; train eagerly to clip"
                    .into(),
            ));
        }
        ctx.optimizer.zero_grad();
        for (b, (xs, y)) in train.batches(ctx.epoch as u64).enumerate() {
            check_inputs(ctx.model, &xs)?;
            Self::each_callback(callbacks, ctx, |cb, c| cb.on_batch_begin(c, b))?;
            let (loss, out) = match graphs.as_mut() {
                Some(graphs) => {
                    // The compiled step's arguments: the inputs, then the target.
                    let mut args = xs.clone();
                    args.push(y.clone());
                    let outs = graphs.call(&args, &mut |batch| {
                        let (inputs, target) = batch.split_at(batch.len() - 1);
                        let (loss, out) = self.step(ctx, inputs, &target[0]);
                        vec![loss, out]
                    });
                    ctx.global_step += 1;
                    (outs[0].clone(), outs[1].clone())
                }
                None => {
                    let out = ctx.model.forward_inputs(&xs);
                    let loss = (self.loss)(&out, &y);
                    if accum > 1 {
                        loss.mul_scalar(1.0 / accum as f64).backward();
                    } else {
                        loss.backward();
                    }
                    if (b + 1) % accum == 0 || b + 1 == n {
                        if let Some(max) = self.clip_grad_norm {
                            clip_grad_norm(&ctx.model.parameters(), max, 2.0);
                        }
                        ctx.optimizer.step();
                        ctx.optimizer.zero_grad();
                        ctx.global_step += 1;
                    }
                    (loss, out)
                }
            };
            let loss_value = loss.item::<f64>();
            let out = out.detach();
            let mut batch = Meter::new(&self.metrics);
            batch.update(loss_value, &out, &y);
            meter.merge(&batch);
            let mut logs: Logs = batch.values().into_iter().collect();
            logs.insert("lr".into(), ctx.optimizer.lr());
            Self::each_callback(callbacks, ctx, |cb, c| cb.on_batch_end(c, b, &logs))?;
            let acc = meter
                .values()
                .into_iter()
                .find(|(k, _)| k == "accuracy")
                .map(|(_, v)| v);
            let batch_size = xs[0].shape().first().copied().unwrap_or(1);
            progress.batch(batch_size, meter.loss(), acc);
        }
        Ok((meter.values().into_iter().collect(), progress))
    }

    /// One whole training step (what a compiled step traces): forward, loss, backward,
    /// update, gradients cleared. Returns the loss and the detached output.
    fn step(&self, ctx: &mut TrainContext, xs: &[Tensor], y: &Tensor) -> (Tensor, Tensor) {
        let out = ctx.model.forward_inputs(xs);
        let loss = (self.loss)(&out, y);
        loss.backward();
        ctx.optimizer.step();
        ctx.optimizer.zero_grad();
        (loss.detach(), out.detach())
    }

    /// Loss and metrics over `data` in evaluation mode without gradients (the model's mode is
    /// restored afterwards).
    pub fn evaluate(&self, model: &dyn MultiInput, data: &dyn BatchSource) -> Logs {
        let was_training = model.is_training();
        model.eval();
        let mut meter = Meter::new(&self.metrics);
        no_grad(|| {
            for (xs, y) in data.batches(0) {
                let out = model.forward_inputs(&xs);
                let loss = (self.loss)(&out, &y).item::<f64>();
                meter.update(loss, &out, &y);
            }
        });
        model.set_training(was_training);
        meter.values().into_iter().collect()
    }

    /// Model outputs for every batch of `data`, concatenated along dim 0 (evaluation mode, no
    /// gradients).
    pub fn predict(&self, model: &dyn MultiInput, data: &dyn BatchSource) -> Tensor {
        let was_training = model.is_training();
        model.eval();
        let outs: Vec<Tensor> = no_grad(|| {
            data.batches(0)
                .map(|(xs, _)| model.forward_inputs(&xs))
                .collect()
        });
        model.set_training(was_training);
        Tensor::cat(&outs, 0)
    }
}

/// Every callback's [`Callback::state_tensors`], named `<callback name>.<tensor name>`.
fn all_state_tensors(callbacks: &[Box<dyn Callback>]) -> StateDict {
    let mut all = StateDict::new();
    for cb in callbacks {
        all.extend(cb.state_tensors().prefixed(&tensor_prefix(cb.as_ref())));
    }
    all
}

/// The prefix of a callback's tensors in [`all_state_tensors`]: `<callback name>.`.
fn tensor_prefix(cb: &dyn Callback) -> String {
    format!("{}.", cb.name())
}

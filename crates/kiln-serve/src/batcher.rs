//! Dynamic batching: requests for one model version queue, and a worker joins those already
//! waiting and those that arrive within `max_queue_delay_us` of the first, up to `max_batch_size` rows (or a preferred
//! size), along dim 0; the graph runs once on the joined batch (its batch dim is symbolic) and
//! each request gets its own rows back, in order.
//!
//! Workers are plain threads — `instance_count` of them — so model runs never occupy the async
//! runtime's threads; the kernels fan out on Kiln's compute pool. The queue is bounded: a
//! request that finds it full is refused at once (503), not left to wait.

use crate::config::ModelConfig;
use crate::error::ServeError;
use crate::metrics::Stats;
use crate::tensor::HostTensor;
use kiln_kernels::Operand;
use kiln_kernels::OwnedOperand;
use kiln_runtime::artifact::{ArtifactError, LoadedGraph};
use parking_lot::Mutex;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What a request gets back.
pub type Answer = Result<Vec<HostTensor>, ServeError>;

/// One request waiting for its batch.
pub struct Job {
    inputs: Vec<HostTensor>,
    rows: usize,
    deadline: Instant,
    enqueued: Instant,
    reply: oneshot::Sender<Answer>,
}

impl Job {
    /// A job for checked `inputs` of `rows` batch rows, and where its answer will arrive.
    pub fn new(
        inputs: Vec<HostTensor>,
        rows: usize,
        deadline: Instant,
    ) -> (Job, oneshot::Receiver<Answer>) {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            inputs,
            rows,
            deadline,
            enqueued: Instant::now(),
            reply,
        };
        (job, answer)
    }
}

/// The queue and workers of one model version. Dropping it lets the workers finish the
/// queued requests, then stop.
pub struct Batcher {
    queue: SyncSender<Job>,
    label: String,
}

/// A model version's graph as the workers run it: a Kiln graph file, or an imported ONNX
/// model.
pub trait Runnable: Send + Sync {
    /// Runs the graph on one value per input.
    fn run(&self, args: &[Operand<'_>]) -> Result<Vec<OwnedOperand>, ArtifactError>;
}

impl Runnable for LoadedGraph {
    fn run(&self, args: &[Operand<'_>]) -> Result<Vec<OwnedOperand>, ArtifactError> {
        LoadedGraph::run(self, args)
    }
}

impl Runnable for kiln_onnx::OnnxModel {
    fn run(&self, args: &[Operand<'_>]) -> Result<Vec<OwnedOperand>, ArtifactError> {
        kiln_onnx::OnnxModel::run(self, args)
    }
}

/// How the workers form batches.
#[derive(Clone)]
struct Policy {
    batching: bool,
    max_rows: usize,
    delay: Duration,
    preferred: Vec<usize>,
}

impl Batcher {
    /// Starts `config.instance_count` workers for `graph`; `batching` says whether requests
    /// may be joined (else each runs alone). `label` names the worker threads.
    pub fn start(
        graph: Arc<dyn Runnable>,
        config: &ModelConfig,
        batching: bool,
        stats: Arc<Stats>,
        label: String,
    ) -> Batcher {
        let (queue, jobs) = mpsc::sync_channel(config.max_queue_size);
        let jobs = Arc::new(Mutex::new(jobs));
        let policy = Policy {
            batching,
            max_rows: config.max_batch_size.max(1),
            delay: Duration::from_micros(config.max_queue_delay_us),
            preferred: config.preferred_batch_sizes.clone(),
        };
        for i in 0..config.instance_count {
            let (graph, jobs, stats, policy) = (
                Arc::clone(&graph),
                Arc::clone(&jobs),
                Arc::clone(&stats),
                policy.clone(),
            );
            std::thread::Builder::new()
                .name(format!("kiln-serve {label} #{i}"))
                .spawn(move || work(&*graph, &jobs, &stats, &policy))
                .expect("a worker thread starts");
        }
        Batcher { queue, label }
    }

    /// Queues a job; a full queue or stopped workers answer 503 at once.
    pub fn submit(&self, job: Job) -> Result<(), ServeError> {
        match self.queue.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(ServeError::Unavailable(format!(
                "model {}: the request queue is full; retry later",
                self.label
            ))),
            Err(TrySendError::Disconnected(_)) => Err(ServeError::Unavailable(format!(
                "model {} is unloading",
                self.label
            ))),
        }
    }
}

/// A worker: takes a batch of jobs, runs it, answers; stops when the queue is gone and empty.
fn work(graph: &dyn Runnable, jobs: &Mutex<Receiver<Job>>, stats: &Stats, policy: &Policy) {
    let mut carried: Option<Job> = None;
    loop {
        let batch = {
            let rx = jobs.lock();
            let first = match carried.take() {
                Some(job) => job,
                None => match rx.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
            };
            let mut rows = first.rows;
            let until = first.enqueued + policy.delay;
            let mut batch = vec![first];
            while policy.batching && rows < policy.max_rows && !policy.preferred.contains(&rows) {
                // Past the delay, requests already queued still join: a loaded server
                // batches even with no delay at all.
                let now = Instant::now();
                let next = if now >= until {
                    rx.try_recv().map_err(|_| RecvTimeoutError::Timeout)
                } else {
                    rx.recv_timeout(until - now)
                };
                match next {
                    Ok(job) if rows + job.rows <= policy.max_rows => {
                        rows += job.rows;
                        batch.push(job);
                    }
                    Ok(job) => {
                        // Too many rows to join: it starts the next batch.
                        carried = Some(job);
                        break;
                    }
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
            batch
        };
        run_batch(graph, batch, stats);
    }
}

/// Runs one batch and answers each job with its rows.
fn run_batch(graph: &dyn Runnable, batch: Vec<Job>, stats: &Stats) {
    let now = Instant::now();
    let mut live = Vec::with_capacity(batch.len());
    for job in batch {
        stats.record_queue(now.saturating_duration_since(job.enqueued));
        if job.reply.is_closed() {
            continue; // the client went away
        }
        if now > job.deadline {
            let _ = job.reply.send(Err(ServeError::Timeout(
                "the request waited past its deadline".into(),
            )));
            continue;
        }
        live.push(job);
    }
    if live.is_empty() {
        return;
    }
    let (args, live) = join(live);
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let operands: Vec<_> = args.iter().map(HostTensor::to_operand).collect();
        let refs: Vec<Operand<'_>> = operands.iter().map(|o| o.operand()).collect();
        graph.run(&refs).map(|outs| {
            outs.iter()
                .map(|o| HostTensor::from_operand(o.operand()))
                .collect::<Vec<_>>()
        })
    }));
    let rows: usize = live.iter().map(|j| j.rows).sum();
    stats.record_execution(rows, started.elapsed());
    match outcome {
        Ok(Ok(outputs)) if live.len() == 1 => {
            // A request run alone gets the outputs themselves, not a copy of their rows.
            let job = live.into_iter().next().expect("one job");
            let _ = job.reply.send(Ok(outputs));
        }
        Ok(Ok(outputs)) => {
            let mut offset = 0;
            for job in live {
                let mine = outputs
                    .iter()
                    .map(|o| rows_of(o, offset, job.rows, rows))
                    .collect();
                offset += job.rows;
                let _ = job.reply.send(Ok(mine));
            }
        }
        Ok(Err(e)) => answer_all(live, ServeError::BadRequest(e.to_string())),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            answer_all(
                live,
                ServeError::Internal(format!("the model failed: {what}")),
            );
        }
    }
}

fn answer_all(jobs: Vec<Job>, e: ServeError) {
    for job in jobs {
        let _ = job.reply.send(Err(e.clone()));
    }
}

/// The jobs' inputs joined along dim 0, taken out of the jobs (one job: its inputs moved, not
/// copied).
fn join(mut jobs: Vec<Job>) -> (Vec<HostTensor>, Vec<Job>) {
    if let [one] = &mut jobs[..] {
        return (std::mem::take(&mut one.inputs), jobs);
    }
    let rows: usize = jobs.iter().map(|j| j.rows).sum();
    let joined = (0..jobs[0].inputs.len())
        .map(|k| {
            let first = &jobs[0].inputs[k];
            let mut shape = first.shape.clone();
            shape[0] = rows;
            let bytes = jobs
                .iter()
                .flat_map(|j| j.inputs[k].bytes.iter().copied())
                .collect();
            HostTensor {
                dtype: first.dtype,
                shape,
                bytes,
            }
        })
        .collect();
    for job in &mut jobs {
        job.inputs = Vec::new(); // joined; the request's own copy is no longer needed
    }
    (joined, jobs)
}

/// Rows `offset..offset + n` of an output of `total` rows.
fn rows_of(o: &HostTensor, offset: usize, n: usize, total: usize) -> HostTensor {
    let row_bytes = o.bytes.len() / total.max(1);
    let mut shape = o.shape.clone();
    shape[0] = n;
    HostTensor {
        dtype: o.dtype,
        shape,
        bytes: o.bytes[offset * row_bytes..(offset + n) * row_bytes].to_vec(),
    }
}

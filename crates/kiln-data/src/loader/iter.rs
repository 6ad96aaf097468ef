//! [`Batches`]: the iterator over one epoch of a [`DataLoader`](crate::DataLoader), produced in
//! the calling thread or prefetched by worker threads.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Produces batch `k` of the epoch (`k` < the number of batches). Shared by all workers.
pub(crate) type MakeBatch<B> = Arc<dyn Fn(usize) -> B + Send + Sync>;

/// An iterator over the batches of one epoch, in order.
///
/// With `num_workers == 0` each batch is built in the calling thread when `next` is called.
/// With `n` workers, batch `k` is built by worker `k % n` ahead of time; each worker keeps at
/// most `prefetch_factor` finished batches queued, and `next` takes them in order, so the
/// sequence is the same as with no workers. Dropping the iterator (even half-way through an
/// epoch) stops the workers and joins them. A panic in a worker is re-raised by `next`.
pub struct Batches<B> {
    make: MakeBatch<B>,
    next: usize,
    total: usize,
    workers: Option<Workers<B>>,
}

struct Workers<B> {
    receivers: Vec<Receiver<B>>,
    handles: Vec<Option<JoinHandle<()>>>,
}

impl<B: Send + 'static> Batches<B> {
    /// An iterator over `total` batches built by `make`, on `num_workers` threads (0 = here).
    pub(crate) fn new(
        make: MakeBatch<B>,
        total: usize,
        num_workers: usize,
        prefetch_factor: usize,
    ) -> Batches<B> {
        let workers = (num_workers > 0 && total > 0)
            .then(|| Workers::spawn(&make, total, num_workers.min(total), prefetch_factor));
        Batches {
            make,
            next: 0,
            total,
            workers,
        }
    }
}

impl<B: Send + 'static> Workers<B> {
    fn spawn(make: &MakeBatch<B>, total: usize, n: usize, prefetch: usize) -> Workers<B> {
        let mut receivers = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for w in 0..n {
            let (tx, rx) = sync_channel::<B>(prefetch.max(1));
            let make = Arc::clone(make);
            let handle = std::thread::Builder::new()
                .name(format!("kiln-data-worker-{w}"))
                .spawn(move || {
                    for k in (w..total).step_by(n) {
                        // A send error means the iterator was dropped: stop quietly.
                        if tx.send(make(k)).is_err() {
                            return;
                        }
                    }
                })
                .expect("DataLoader: cannot spawn a worker thread");
            receivers.push(rx);
            handles.push(Some(handle));
        }
        Workers { receivers, handles }
    }

    /// Batch `k`, from worker `k % n`.
    fn take(&mut self, k: usize) -> B {
        let w = k % self.receivers.len();
        match self.receivers[w].recv() {
            Ok(batch) => batch,
            Err(_) => {
                // The worker hung up before sending batch k: it panicked. Re-raise its panic.
                if let Some(Err(payload)) = self.handles[w].take().map(JoinHandle::join) {
                    std::panic::resume_unwind(payload);
                }
                panic!("DataLoader: worker {w} stopped before producing batch {k}");
            }
        }
    }
}

impl<B> Drop for Workers<B> {
    fn drop(&mut self) {
        // Hang up first so that workers blocked on a full queue wake and exit, then join.
        self.receivers.clear();
        for handle in self.handles.iter_mut().filter_map(Option::take) {
            let _ = handle.join();
        }
    }
}

impl<B: Send + 'static> Iterator for Batches<B> {
    type Item = B;

    fn next(&mut self) -> Option<B> {
        if self.next >= self.total {
            // Finished: release the worker threads now rather than when dropped.
            self.workers = None;
            return None;
        }
        let k = self.next;
        self.next += 1;
        Some(match &mut self.workers {
            Some(workers) => workers.take(k),
            None => (self.make)(k),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.total - self.next;
        (left, Some(left))
    }
}

impl<B: Send + 'static> ExactSizeIterator for Batches<B> {}

//! [`DataLoader`]: batches from a [`Dataset`], shuffled per epoch, optionally prefetched on
//! worker threads.

mod collate;
mod iter;
mod plan;

pub use collate::{Collate, FnCollate, StackCollate};
pub use iter::Batches;

use crate::dataset::Dataset;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Iterates a dataset in batches, like `torch.utils.data.DataLoader`.
///
/// ```
/// use kiln_core::{DType, Tensor};
/// use kiln_data::{DataLoader, TensorDataset};
/// let ds = TensorDataset::new(Tensor::zeros([10, 4], DType::F32), Tensor::zeros([10], DType::I64));
/// let loader = DataLoader::new(ds, 4).shuffle(true).seed(42).num_workers(2);
/// assert_eq!(loader.len(), 3); // 4 + 4 + 2
/// for (x, y) in &loader {
///     assert_eq!(x.size(1), 4);
///     assert_eq!(x.size(0), y.size(0));
/// }
/// ```
///
/// # Epochs and shuffling
///
/// With `shuffle(true)` the sample order of an epoch is a permutation determined only by
/// `(seed, epoch)`; augmentations of a [`Transformed`](crate::Transformed) dataset also receive
/// the epoch. The loader keeps an epoch counter, starting at 0: **each call to
/// [`iter`](DataLoader::iter) (or `for … in &loader`) runs the counter's epoch and then
/// advances it by one**, so successive epochs see fresh orders. [`set_epoch`](DataLoader::set_epoch)
/// sets the epoch of the next iteration (like PyTorch's `DistributedSampler.set_epoch`): call
/// `loader.set_epoch(e)` before each epoch to make runs resumable, and setting the same epoch
/// again replays exactly the same batches. [`iter_epoch`](DataLoader::iter_epoch) runs a given
/// epoch without touching the counter.
///
/// # Workers
///
/// `num_workers(0)` (the default) builds each batch in the calling thread. With `n > 0`,
/// `n` threads build batches ahead of time (each keeps at most `prefetch_factor` finished
/// batches queued); batches still come out in order and are identical to the
/// `num_workers(0)` ones. Workers start when iteration starts and stop when the iterator is
/// finished or dropped. Batches are built with grad recording off.
pub struct DataLoader<D, C = StackCollate> {
    dataset: Arc<D>,
    collate: Arc<C>,
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    drop_last: bool,
    num_workers: usize,
    prefetch_factor: usize,
    epoch: AtomicU64,
}

impl<D: Dataset> DataLoader<D, StackCollate> {
    /// A loader over `dataset` (pass an `Arc` to share it) in batches of `batch_size`, in
    /// order, keeping a last short batch, with no workers and the default stacking collate.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    pub fn new(dataset: D, batch_size: usize) -> DataLoader<D, StackCollate> {
        if batch_size == 0 {
            panic!("DataLoader::new: batch_size must be positive");
        }
        DataLoader {
            dataset: Arc::new(dataset),
            collate: Arc::new(StackCollate),
            batch_size,
            shuffle: false,
            seed: 0,
            drop_last: false,
            num_workers: 0,
            prefetch_factor: 2,
            epoch: AtomicU64::new(0),
        }
    }
}

impl<D: Dataset, C> DataLoader<D, C> {
    /// Reshuffle the samples every epoch (from `(seed, epoch)`); off by default.
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }

    /// The seed of the shuffle (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Drop the last batch if it is shorter than `batch_size`; off by default.
    pub fn drop_last(mut self, on: bool) -> Self {
        self.drop_last = on;
        self
    }

    /// Build batches on `n` background threads (0, the default, = in the calling thread).
    pub fn num_workers(mut self, n: usize) -> Self {
        self.num_workers = n;
        self
    }

    /// Finished batches each worker may queue ahead (default 2, minimum 1).
    pub fn prefetch_factor(mut self, n: usize) -> Self {
        self.prefetch_factor = n.max(1);
        self
    }

    /// Use `collate` to build batches instead of stacking.
    pub fn collate<C2>(self, collate: C2) -> DataLoader<D, C2> {
        DataLoader {
            dataset: self.dataset,
            collate: Arc::new(collate),
            batch_size: self.batch_size,
            shuffle: self.shuffle,
            seed: self.seed,
            drop_last: self.drop_last,
            num_workers: self.num_workers,
            prefetch_factor: self.prefetch_factor,
            epoch: self.epoch,
        }
    }

    /// Use the closure `f(samples) -> batch` to build batches.
    pub fn collate_fn<F>(self, f: F) -> DataLoader<D, FnCollate<F>> {
        self.collate(FnCollate(f))
    }

    /// The number of batches per epoch.
    pub fn len(&self) -> usize {
        plan::num_batches(self.dataset.len(), self.batch_size, self.drop_last)
    }

    /// True when an epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dataset.
    pub fn dataset(&self) -> &D {
        &self.dataset
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The epoch the next [`iter`](DataLoader::iter) will run.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Sets the epoch the next [`iter`](DataLoader::iter) will run (see the type docs).
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// The dataset indices of each batch of `epoch`, in order.
    pub fn batch_indices(&self, epoch: u64) -> Vec<Vec<usize>> {
        let order = plan::epoch_order(self.dataset.len(), self.shuffle, self.seed, epoch);
        plan::batches(&order, self.batch_size, self.drop_last)
    }
}

impl<D, C> DataLoader<D, C>
where
    D: Dataset + Send + Sync + 'static,
    C: Collate<D::Item> + 'static,
    C::Output: Send + 'static,
{
    /// The batches of the current epoch; advances the epoch counter (see the type docs).
    pub fn iter(&self) -> Batches<C::Output> {
        let epoch = self.epoch.fetch_add(1, Ordering::Relaxed);
        self.iter_epoch(epoch)
    }

    /// The batches of `epoch`, leaving the epoch counter alone. The same epoch always gives
    /// the same batches.
    pub fn iter_epoch(&self, epoch: u64) -> Batches<C::Output> {
        let plan = self.batch_indices(epoch);
        let total = plan.len();
        let dataset = Arc::clone(&self.dataset);
        let collate = Arc::clone(&self.collate);
        let make = move |k: usize| {
            kiln_core::no_grad(|| {
                let samples = plan[k]
                    .iter()
                    .map(|&i| dataset.get_in_epoch(i, epoch))
                    .collect();
                collate.collate(samples)
            })
        };
        Batches::new(
            Arc::new(make),
            total,
            self.num_workers,
            self.prefetch_factor,
        )
    }
}

impl<D, C> IntoIterator for &DataLoader<D, C>
where
    D: Dataset + Send + Sync + 'static,
    C: Collate<D::Item> + 'static,
    C::Output: Send + 'static,
{
    type Item = C::Output;
    type IntoIter = Batches<C::Output>;

    /// Same as [`DataLoader::iter`]: runs the current epoch and advances the counter.
    fn into_iter(self) -> Batches<C::Output> {
        self.iter()
    }
}

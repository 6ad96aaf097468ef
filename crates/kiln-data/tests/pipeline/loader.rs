use crate::{labels, numbered};
use kiln_core::Tensor;
use kiln_data::transforms::SampleRng;
use kiln_data::{DataLoader, Dataset, Transformed};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// All labels of one epoch, batch by batch.
fn epoch_labels(it: impl Iterator<Item = (Tensor, Tensor)>) -> Vec<Vec<i64>> {
    it.map(|(_, y)| labels(&y)).collect()
}

#[test]
fn batches_in_order_with_short_last_batch() {
    let loader = DataLoader::new(numbered(10), 4);
    assert_eq!(loader.len(), 3);
    let batches: Vec<(Tensor, Tensor)> = loader.iter().collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0].0.shape(), &[4, 2]);
    assert_eq!(batches[0].0.to_vec::<f32>()[..4], [0.0, 0.5, 1.0, 1.5]);
    assert_eq!(batches[2].0.shape(), &[2, 2]);
    assert_eq!(labels(&batches[2].1), vec![8, 9]);
}

#[test]
fn drop_last_drops_the_short_batch() {
    let loader = DataLoader::new(numbered(10), 4).drop_last(true);
    assert_eq!(loader.len(), 2);
    assert_eq!(loader.iter().count(), 2);
    assert!(DataLoader::new(numbered(3), 4).drop_last(true).is_empty());
    assert_eq!(DataLoader::new(numbered(0), 4).iter().count(), 0);
}

#[test]
fn iterator_reports_exact_size() {
    let loader = DataLoader::new(numbered(10), 3);
    let mut it = loader.iter();
    assert_eq!(it.len(), 4);
    it.next();
    assert_eq!(it.len(), 3);
}

#[test]
fn shuffle_is_a_permutation_fixed_by_seed_and_epoch() {
    let loader = DataLoader::new(numbered(50), 8).shuffle(true).seed(3);
    let e0 = epoch_labels(loader.iter_epoch(0));
    let mut all: Vec<i64> = e0.concat();
    all.sort_unstable();
    assert_eq!(all, (0..50).collect::<Vec<_>>());
    assert_ne!(e0.concat(), (0..50).collect::<Vec<_>>(), "not shuffled");
    assert_eq!(e0, epoch_labels(loader.iter_epoch(0)));
    assert_ne!(e0, epoch_labels(loader.iter_epoch(1)));
    let other_seed = DataLoader::new(numbered(50), 8).shuffle(true).seed(4);
    assert_ne!(e0, epoch_labels(other_seed.iter_epoch(0)));
    // batch_indices describes the same plan.
    let plan: Vec<Vec<i64>> = loader
        .batch_indices(0)
        .into_iter()
        .map(|b| b.into_iter().map(|i| i as i64).collect())
        .collect();
    assert_eq!(plan, e0);
}

#[test]
fn epoch_counter_advances_and_set_epoch_replays() {
    let loader = DataLoader::new(numbered(30), 7).shuffle(true).seed(1);
    assert_eq!(loader.epoch(), 0);
    let first = epoch_labels((&loader).into_iter());
    assert_eq!(loader.epoch(), 1);
    let second: Vec<Vec<i64>> = (&loader).into_iter().map(|(_, y)| labels(&y)).collect();
    assert_eq!(loader.epoch(), 2);
    assert_ne!(first, second, "consecutive epochs should reshuffle");
    loader.set_epoch(0);
    assert_eq!(epoch_labels(loader.iter()), first);
    assert_eq!(epoch_labels(loader.iter()), second);
    // iter_epoch leaves the counter alone.
    loader.iter_epoch(7).count();
    assert_eq!(loader.epoch(), 2);
}

/// A dataset with random per-sample augmentation, to compare worker counts.
fn augmented(
    n: usize,
) -> Transformed<kiln_data::TensorDataset, impl kiln_data::transforms::Transform> {
    Transformed::new(
        numbered(n),
        |x: &Tensor, rng: &mut SampleRng| x.add_scalar(rng.uniform()),
        11,
    )
}

#[test]
fn workers_give_the_same_batches_as_the_calling_thread() {
    let ds = Arc::new(augmented(101));
    let collect = |workers: usize| -> Vec<(Vec<f32>, Vec<i64>)> {
        let loader = DataLoader::new(Arc::clone(&ds), 6)
            .shuffle(true)
            .seed(2)
            .num_workers(workers)
            .prefetch_factor(1);
        loader.set_epoch(3);
        loader
            .iter()
            .map(|(x, y): (Tensor, Tensor)| (x.to_vec::<f32>(), labels(&y)))
            .collect()
    };
    let serial = collect(0);
    assert_eq!(serial.len(), 17);
    for workers in [1, 2, 3, 8, 40] {
        assert_eq!(collect(workers), serial, "{workers} workers");
    }
}

/// Counts `get` calls and can be slowed down or made to fail.
struct Probe {
    calls: Arc<AtomicUsize>,
    delay: Duration,
    fail_at: Option<usize>,
}

impl Dataset for Probe {
    type Item = Tensor;
    fn len(&self) -> usize {
        1000
    }
    fn get(&self, index: usize) -> Tensor {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if Some(index) == self.fail_at {
            panic!("probe failure at {index}");
        }
        std::thread::sleep(self.delay);
        Tensor::from_vec(vec![index as i64], [1])
    }
}

#[test]
fn prefetch_is_bounded_and_dropping_stops_workers() {
    let calls = Arc::new(AtomicUsize::new(0));
    let probe = Probe {
        calls: Arc::clone(&calls),
        delay: Duration::ZERO,
        fail_at: None,
    };
    let loader = DataLoader::new(probe, 10).num_workers(2).prefetch_factor(2);
    let mut it = loader.iter();
    let first = it.next().unwrap();
    assert_eq!(first.shape(), &[10, 1]);
    assert_eq!(first.to_vec::<i64>()[9], 9);
    std::thread::sleep(Duration::from_millis(50));
    // Each worker holds at most 2 queued batches plus one it is building or blocked sending.
    let fetched = calls.load(Ordering::SeqCst);
    assert!(
        fetched <= 10 * (1 + 2 * 3),
        "prefetched {fetched} samples: queue not bounded"
    );
    let start = Instant::now();
    drop(it); // joins the workers
    assert!(start.elapsed() < Duration::from_secs(5));
    let after = calls.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        after,
        "a worker kept running after drop"
    );
}

#[test]
fn dropping_mid_epoch_with_slow_workers_does_not_hang() {
    let probe = Probe {
        calls: Arc::new(AtomicUsize::new(0)),
        delay: Duration::from_millis(1),
        fail_at: None,
    };
    let loader = DataLoader::new(probe, 5).num_workers(3);
    let start = Instant::now();
    for (k, batch) in loader.iter().enumerate() {
        assert_eq!(batch.to_vec::<i64>()[0], 5 * k as i64);
        if k == 2 {
            break;
        }
    }
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn worker_panics_reach_the_caller() {
    let probe = Probe {
        calls: Arc::new(AtomicUsize::new(0)),
        delay: Duration::ZERO,
        fail_at: Some(23),
    };
    let loader = DataLoader::new(probe, 10).num_workers(2);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loader.iter().count()));
    let payload = result.expect_err("the worker's panic should propagate");
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(msg.contains("probe failure at 23"), "{msg}");
}

#[test]
fn custom_collate_closure() {
    let loader = DataLoader::new(numbered(5), 2)
        .collate_fn(|samples: Vec<(Tensor, Tensor)>| {
            samples.iter().map(|(_, y)| y.item::<i64>()).sum::<i64>()
        })
        .num_workers(2);
    assert_eq!(loader.iter().collect::<Vec<_>>(), vec![1, 5, 4]);
}

#[test]
fn loader_accepts_shared_datasets() {
    let shared = Arc::new(numbered(4));
    let a = DataLoader::new(Arc::clone(&shared), 2);
    let b = DataLoader::new(shared, 4);
    assert_eq!((a.len(), b.len()), (2, 1));
    assert_eq!(a.dataset().len(), 4);
    assert_eq!(a.batch_size(), 2);
}

//! Which sample indices make up each batch of an epoch.

use crate::rng::{derive_key, permutation, stream};

/// The sample order of one epoch: `0..n`, or a permutation determined by (seed, epoch).
pub(crate) fn epoch_order(n: usize, shuffle: bool, seed: u64, epoch: u64) -> Vec<usize> {
    if shuffle {
        permutation(n, derive_key(&[stream::SHUFFLE, seed, epoch]))
    } else {
        (0..n).collect()
    }
}

/// The number of batches `n` samples make.
pub(crate) fn num_batches(n: usize, batch_size: usize, drop_last: bool) -> usize {
    if drop_last {
        n / batch_size
    } else {
        n.div_ceil(batch_size)
    }
}

/// `order` cut into batches of `batch_size` (the last one shorter unless dropped).
pub(crate) fn batches(order: &[usize], batch_size: usize, drop_last: bool) -> Vec<Vec<usize>> {
    let count = num_batches(order.len(), batch_size, drop_last);
    order
        .chunks(batch_size)
        .take(count)
        .map(<[usize]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batching_and_drop_last() {
        let order: Vec<usize> = (0..10).collect();
        let b = batches(&order, 4, false);
        assert_eq!(b, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
        assert_eq!(batches(&order, 4, true).len(), 2);
        assert_eq!(num_batches(10, 4, false), 3);
        assert_eq!(num_batches(10, 4, true), 2);
        assert_eq!(num_batches(0, 4, false), 0);
    }

    #[test]
    fn shuffles_differ_by_epoch_and_repeat_by_epoch() {
        assert_eq!(epoch_order(5, false, 9, 3), vec![0, 1, 2, 3, 4]);
        assert_eq!(epoch_order(50, true, 9, 3), epoch_order(50, true, 9, 3));
        assert_ne!(epoch_order(50, true, 9, 3), epoch_order(50, true, 9, 4));
        assert_ne!(epoch_order(50, true, 9, 3), epoch_order(50, true, 8, 3));
    }
}

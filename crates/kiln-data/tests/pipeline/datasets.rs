use crate::numbered;
use kiln_core::Tensor;
use kiln_data::transforms::SampleRng;
use kiln_data::{random_split, ConcatDataset, Dataset, Subset, Transformed};
use std::collections::BTreeSet;
use std::sync::Arc;

fn label(item: (Tensor, Tensor)) -> i64 {
    item.1.item::<i64>()
}

#[test]
fn subset_reads_through_indices() {
    let s = Subset::new(numbered(10), vec![7, 2, 2]);
    assert_eq!(s.len(), 3);
    assert_eq!(
        [label(s.get(0)), label(s.get(1)), label(s.get(2))],
        [7, 2, 2]
    );
}

#[test]
#[should_panic(expected = "out of range")]
fn subset_rejects_bad_indices() {
    Subset::new(numbered(3), vec![3]);
}

#[test]
fn concat_walks_parts_in_order() {
    let c = ConcatDataset::new(vec![numbered(2), numbered(0), numbered(3)]);
    assert_eq!(c.len(), 5);
    let got: Vec<i64> = (0..5).map(|i| label(c.get(i))).collect();
    assert_eq!(got, vec![0, 1, 0, 1, 2]);
}

#[test]
fn concat_of_boxed_different_types() {
    type Dyn = Box<dyn Dataset<Item = (Tensor, Tensor)> + Send + Sync>;
    let a: Dyn = Box::new(numbered(2));
    let b: Dyn = Box::new(Subset::new(numbered(5), vec![4]));
    let c = ConcatDataset::new(vec![a, b]);
    assert_eq!(
        (0..3).map(|i| label(c.get(i))).collect::<Vec<_>>(),
        vec![0, 1, 4]
    );
}

#[test]
fn random_split_partitions_deterministically() {
    let ds = Arc::new(numbered(103));
    let parts = random_split(Arc::clone(&ds), [0.7, 0.2, 0.1], 5);
    let sizes: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 103);
    assert_eq!(sizes, vec![73, 20, 10]); // floors 72, 20, 10; the one left over goes first
    let all: BTreeSet<usize> = parts.iter().flat_map(|p| p.indices().to_vec()).collect();
    assert_eq!(all.len(), 103, "parts overlap or miss samples");

    let again = random_split(Arc::clone(&ds), [0.7, 0.2, 0.1], 5);
    assert_eq!(parts[0].indices(), again[0].indices());
    let other = random_split(ds, [0.7, 0.2, 0.1], 6);
    assert_ne!(parts[0].indices(), other[0].indices());
}

#[test]
fn random_split_by_lengths() {
    let parts = random_split(numbered(10), [3usize, 7], 0);
    assert_eq!((parts[0].len(), parts[1].len()), (3, 7));
    let parts = random_split(numbered(10), vec![10usize, 0], 0);
    assert_eq!(parts[1].len(), 0);
}

#[test]
fn transformed_is_seeded_by_epoch_and_index() {
    let noise = |x: &Tensor, rng: &mut SampleRng| x.add_scalar(rng.uniform());
    let t = Arc::new(Transformed::new(numbered(4), noise, 9));
    let value = |i: usize, e: u64| t.get_in_epoch(i, e).0.to_vec::<f32>()[0];
    assert_eq!(value(1, 0), value(1, 0));
    assert_eq!(t.get(1).0.to_vec::<f32>()[0], value(1, 0));
    assert_ne!(value(1, 0), value(1, 1));
    assert_ne!(value(1, 0) - 1.0, value(2, 0) - 2.0);
    // Labels pass through.
    assert_eq!(label(t.get(3)), 3);
    // Wrappers forward the epoch.
    let s = Subset::new(Arc::clone(&t), vec![1]);
    assert_eq!(s.get_in_epoch(0, 1).0.to_vec::<f32>()[0], value(1, 1));
}

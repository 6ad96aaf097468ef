use crate::{tempdir, write};
use kiln_data::{cifar10, DataError, Split};

/// `labels.len()` records; pixel bytes of record `r` are `r + channel`.
fn batch(labels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for (r, &l) in labels.iter().enumerate() {
        b.push(l);
        for c in 0..3u8 {
            b.extend_from_slice(&[r as u8 + c; 1024]);
        }
    }
    b
}

#[test]
fn reads_test_and_train_batches() {
    let dir = tempdir();
    let root = dir.path().join("cifar-10-batches-bin");
    write(&root, "test_batch.bin", &batch(&[3, 9]));
    for i in 1..=5 {
        write(&root, &format!("data_batch_{i}.bin"), &batch(&[i as u8]));
    }
    // The parent directory works too.
    let test = cifar10::load(dir.path(), Split::Test).unwrap();
    assert_eq!(test.images.shape(), &[2, 3, 32, 32]);
    assert_eq!(test.labels.to_vec::<i64>(), vec![3, 9]);
    let px = test.images.to_vec::<u8>();
    assert_eq!((px[0], px[1024], px[2048], px[3072]), (0, 1, 2, 1));
    let train = cifar10::load(&root, Split::Train).unwrap();
    assert_eq!(train.labels.to_vec::<i64>(), vec![1, 2, 3, 4, 5]);
    assert_eq!(cifar10::CLASSES[3], "cat");
}

#[test]
fn cifar_errors() {
    let dir = tempdir();
    let p = dir.path();
    let e = cifar10::read_batch(p.join("test_batch.bin")).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e}");
    let e = cifar10::load(p, Split::Train).unwrap_err();
    assert!(
        matches!(&e, DataError::Missing { path } if path.ends_with("data_batch_1.bin")),
        "{e}"
    );

    let empty = write(p, "empty.bin", &[]);
    assert!(matches!(
        cifar10::read_batch(empty).unwrap_err(),
        DataError::Truncated { .. }
    ));

    let mut partial = batch(&[1, 2]);
    partial.pop();
    let f = write(p, "partial.bin", &partial);
    assert!(matches!(
        cifar10::read_batch(f).unwrap_err(),
        DataError::WrongLength { .. }
    ));

    let f = write(p, "label.bin", &batch(&[1, 2, 10]));
    let e = cifar10::read_batch(f).unwrap_err();
    assert!(matches!(e, DataError::BadLabel { index: 2, .. }), "{e}");
}

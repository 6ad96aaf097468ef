use crate::{gzip, tempdir, write};
use kiln_core::DType;
use kiln_data::{digits, DataError, Dataset};
use std::path::Path;

#[test]
fn bundled_digits_load() {
    let d = digits::load();
    assert_eq!(d.len(), digits::NUM_SAMPLES);
    assert_eq!(d.features().shape(), &[1797, 64]);
    assert_eq!(d.features().dtype(), DType::F32);
    assert_eq!(d.labels().shape(), &[1797]);
    assert_eq!(d.labels().dtype(), DType::I64);
    assert_eq!(d.images().shape(), &[1797, 1, 8, 8]);
    let f = d.features().to_vec::<f32>();
    assert!(f.iter().all(|&v| (0.0..=1.0).contains(&v)));
    assert_eq!(f.iter().cloned().fold(0.0, f32::max), 1.0);
    // The first row of the file is a 0 with pixel 2 = 5 (→ 5/16).
    assert_eq!(d.labels().to_vec::<i64>()[0], 0);
    assert_eq!(f[2], 5.0 / 16.0);
    let mut counts = [0usize; 10];
    for l in d.labels().to_vec::<i64>() {
        counts[l as usize] += 1;
    }
    assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    let (x, y) = d.image_dataset().get(0);
    assert_eq!(
        (x.shape(), y.shape()),
        (&[1usize, 8, 8][..], &[] as &[usize])
    );
}

#[test]
fn default_split_is_stratified_and_deterministic() {
    let (train, test) = digits::default_split();
    assert_eq!((train.len(), test.len()), (1438, 359));
    let per_class = |l: &kiln_core::Tensor| {
        let mut c = [0usize; 10];
        for v in l.to_vec::<i64>() {
            c[v as usize] += 1;
        }
        c
    };
    assert_eq!(
        per_class(test.labels()),
        [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]
    );
    let (train2, test2) = digits::train_test_split(0.2, 0);
    assert_eq!(
        test.features().to_vec::<f32>(),
        test2.features().to_vec::<f32>()
    );
    assert_eq!(
        train.labels().to_vec::<i64>(),
        train2.labels().to_vec::<i64>()
    );
    let (_, other) = digits::train_test_split(0.2, 1);
    assert_ne!(
        test.features().to_vec::<f32>(),
        other.features().to_vec::<f32>()
    );
    // Train and test are disjoint: together they hold every sample exactly once.
    let mut rows: Vec<Vec<u32>> = train
        .features()
        .to_vec2::<f32>()
        .into_iter()
        .chain(test.features().to_vec2::<f32>())
        .map(|r| r.iter().map(|v| v.to_bits()).collect())
        .collect();
    let mut all: Vec<Vec<u32>> = digits::load()
        .features()
        .to_vec2::<f32>()
        .into_iter()
        .map(|r| r.iter().map(|v| v.to_bits()).collect())
        .collect();
    rows.sort();
    all.sort();
    assert_eq!(rows, all);
}

fn row(label: u32) -> String {
    let mut v: Vec<String> = (0..64).map(|i| (i % 17).to_string()).collect();
    v.push(label.to_string());
    v.join(",")
}

#[test]
fn reads_a_user_file_plain_or_gzipped() {
    let dir = tempdir();
    let text = format!("{}\n{}\n", row(3), row(9));
    let plain = write(dir.path(), "d.csv", text.as_bytes());
    let zipped = write(dir.path(), "d.csv.gz", &gzip(text.as_bytes()));
    for p in [plain, zipped] {
        let d = digits::load_from(&p).unwrap();
        assert_eq!(d.labels().to_vec::<i64>(), vec![3, 9]);
        assert_eq!(d.features().to_vec::<f32>()[16], 16.0 / 16.0);
    }
}

#[test]
fn digits_errors() {
    let dir = tempdir();
    let parse = |s: &str| digits::parse(s.as_bytes(), Path::new("x.csv")).unwrap_err();

    let e = digits::load_from(dir.path().join("nope.csv.gz")).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e}");

    let short = format!("{}\n1,2,3\n", row(1));
    assert!(matches!(parse(&short), DataError::BadRow { line: 2, .. }));

    let text = row(1).replace("16", "x");
    assert!(matches!(parse(&text), DataError::BadRow { line: 1, .. }));

    let big_pixel = row(1).replacen("16", "17", 1);
    assert!(matches!(
        parse(&big_pixel),
        DataError::BadRow { line: 1, .. }
    ));

    let bad_label = format!("{}\n{}\n", row(1), row(10));
    let e = parse(&bad_label);
    assert!(matches!(e, DataError::BadLabel { index: 1, .. }), "{e}");
    assert!(e.to_string().contains("line 2"), "{e}");

    assert!(matches!(parse("\n\n"), DataError::Malformed { .. }));

    let mut z = gzip(row(1).repeat(50).as_bytes());
    z.truncate(z.len() / 2);
    let e = digits::parse(&z, Path::new("z.gz")).unwrap_err();
    assert!(matches!(e, DataError::Truncated { .. }), "{e}");
}

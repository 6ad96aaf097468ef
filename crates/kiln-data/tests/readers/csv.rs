use crate::{gzip, tempdir, write};
use kiln_core::DType;
use kiln_data::csv::{self, CsvOptions, LabelKind};
use kiln_data::{DataError, Dataset};

const TABLE: &str = "a,b,target,c\n1,2,0,3\n 4 , 5.5 ,2,-6\n7,8,1,9e1\n";

#[test]
fn reads_named_features_and_class_labels() {
    let dir = tempdir();
    let path = write(dir.path(), "t.csv", TABLE.as_bytes());
    let t = csv::load(&path, &CsvOptions::new("target")).unwrap();
    assert_eq!(t.feature_names, vec!["a", "b", "c"]);
    assert_eq!(t.features.shape(), &[3, 3]);
    assert_eq!(
        t.features.to_vec::<f32>(),
        vec![1.0, 2.0, 3.0, 4.0, 5.5, -6.0, 7.0, 8.0, 90.0]
    );
    assert_eq!(t.labels.dtype(), DType::I64);
    assert_eq!(t.labels.to_vec::<i64>(), vec![0, 2, 1]);
    assert_eq!(t.to_dataset().len(), 3);
    assert!(t.class_names.is_none());

    // Chosen columns, in the chosen order; gzip works too.
    let gz = write(dir.path(), "t.csv.gz", &gzip(TABLE.as_bytes()));
    let t = csv::load(&gz, &CsvOptions::new("target").features(["c", "a"])).unwrap();
    assert_eq!(
        t.features.to_vec::<f32>(),
        vec![3.0, 1.0, -6.0, 4.0, 90.0, 7.0]
    );
}

#[test]
fn regression_and_named_labels() {
    let dir = tempdir();
    let path = write(dir.path(), "r.csv", b"x;y\n1;0.25\n2;-1.5\n");
    let opts = CsvOptions::new("y")
        .label_kind(LabelKind::Regression)
        .delimiter(b';');
    let t = csv::load(&path, &opts).unwrap();
    assert_eq!(t.labels.dtype(), DType::F32);
    assert_eq!(t.labels.to_vec::<f32>(), vec![0.25, -1.5]);

    let path = write(dir.path(), "n.csv", b"x,kind\n1,dog\n2,cat\n3,dog\n");
    let t = csv::load(&path, &CsvOptions::new("kind").label_kind(LabelKind::Named)).unwrap();
    assert_eq!(
        t.class_names,
        Some(vec!["cat".to_string(), "dog".to_string()])
    );
    assert_eq!(t.labels.to_vec::<i64>(), vec![1, 0, 1]);
}

fn error(text: &str, opts: &CsvOptions) -> DataError {
    let dir = tempdir();
    let path = write(dir.path(), "bad.csv", text.as_bytes());
    csv::load(&path, opts).unwrap_err()
}

#[test]
fn csv_errors() {
    let opts = CsvOptions::new("target");
    let dir = tempdir();
    let e = csv::load(dir.path().join("none.csv"), &opts).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e}");

    let e = error("a,b\n1,2\n", &opts);
    assert!(
        matches!(&e, DataError::MissingColumn { column, .. } if column == "target"),
        "{e}"
    );
    let e = error(TABLE, &CsvOptions::new("target").features(["a", "zz"]));
    assert!(
        matches!(&e, DataError::MissingColumn { column, .. } if column == "zz"),
        "{e}"
    );

    let e = error("a,target\n1,0\n2\n", &opts);
    assert!(matches!(e, DataError::BadRow { line: 3, .. }), "{e}");
    let e = error("a,target\n1,0\n2,1\nabc,1\n", &opts);
    assert!(matches!(e, DataError::BadRow { line: 4, .. }), "{e}");
    assert!(e.to_string().contains("bad.csv:4"), "{e}");

    let e = error("a,target\n1,0\n2,-1\n", &opts);
    assert!(matches!(e, DataError::BadLabel { index: 1, .. }), "{e}");
    let e = error("a,target\n1,0.5\n", &opts);
    assert!(matches!(e, DataError::BadLabel { index: 0, .. }), "{e}");
    let regression = CsvOptions::new("target").label_kind(LabelKind::Regression);
    let e = error("a,target\n1,x\n", &regression);
    assert!(matches!(e, DataError::BadLabel { .. }), "{e}");

    let e = error("", &opts);
    assert!(matches!(e, DataError::Malformed { .. }), "{e}");

    // Values that parse but no model can learn from.
    for cell in ["NaN", "inf", "-inf", "1e39"] {
        let e = error(&format!("a,target\n1,0\n{cell},1\n"), &opts);
        assert!(
            matches!(e, DataError::BadRow { line: 3, .. }),
            "{cell}: {e}"
        );
        assert!(e.to_string().contains("not a finite number"), "{e}");
        let e = error(&format!("a,target\n1,{cell}\n"), &regression);
        assert!(
            matches!(e, DataError::BadLabel { index: 0, .. }),
            "{cell}: {e}"
        );
    }

    let e = error("a,target\n\u{0}\u{ff}", &opts);
    assert!(matches!(e, DataError::BadRow { .. }), "{e}");
}

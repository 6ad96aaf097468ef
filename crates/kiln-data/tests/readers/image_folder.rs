use crate::{tempdir, write};
use image::{ImageBuffer, Rgb};
use kiln_data::image_folder::{self, ColorMode, ImageFolder, ImageFolderOptions};
use kiln_data::DataError;
use std::path::Path;

/// Saves a `w × h` image whose pixel (x, y) is (10x, 10y, 7) at `path` (format by extension).
fn save(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    ImageBuffer::from_fn(w, h, |x, y| Rgb([10 * x as u8, 10 * y as u8, 7]))
        .save(path)
        .unwrap();
}

#[test]
fn reads_classes_in_sorted_order() {
    let dir = tempdir();
    let root = dir.path();
    save(&root.join("zebra/1.png"), 4, 3);
    save(&root.join("ant/b.png"), 4, 3);
    save(&root.join("ant/a.PNG"), 4, 3);
    save(&root.join("ant/c.jpg"), 4, 3);
    write(root, "ant/notes.txt", b"ignored");
    write(root, "stray.png", b"ignored: not in a class folder");
    std::fs::create_dir_all(root.join(".hidden")).unwrap();

    let folder = ImageFolder::scan(root).unwrap();
    assert_eq!(folder.classes, vec!["ant", "zebra"]);
    let names: Vec<String> = folder
        .entries
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["a.PNG", "b.png", "c.jpg", "1.png"]);

    let data = folder.load(&ImageFolderOptions::default()).unwrap();
    assert_eq!(data.images.shape(), &[4, 3, 3, 4]);
    assert_eq!(data.labels.to_vec::<i64>(), vec![0, 0, 0, 1]);
    let px = data.images.to_vec::<f32>();
    // Image 0, red plane at (x=2, y=1) = 20/255; green plane at (x=2, y=1) = 10/255.
    assert!((px[4 + 2] - 20.0 / 255.0).abs() < 1e-6);
    assert!((px[12 + 4 + 2] - 10.0 / 255.0).abs() < 1e-6);
    assert!((px[24] - 7.0 / 255.0).abs() < 1e-6);
    assert_eq!(data.to_dataset().features().shape(), &[4, 3, 3, 4]);
}

#[test]
fn resize_and_gray() {
    let dir = tempdir();
    save(&dir.path().join("a/big.png"), 8, 6);
    save(&dir.path().join("b/small.png"), 2, 2);
    let opts = ImageFolderOptions::resize_to(4, 4).color(ColorMode::Gray);
    let data = image_folder::load(dir.path(), &opts).unwrap();
    assert_eq!(data.images.shape(), &[2, 1, 4, 4]);
    let one = image_folder::load_image(
        dir.path().join("b/small.png"),
        &ImageFolderOptions::default(),
    )
    .unwrap();
    assert_eq!(one.shape(), &[3, 2, 2]);
}

#[test]
fn image_folder_errors() {
    let dir = tempdir();
    let root = dir.path();
    let e = image_folder::load(root.join("missing"), &ImageFolderOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e}");
    let e = image_folder::load(root, &ImageFolderOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Malformed { .. }), "{e}");
    std::fs::create_dir_all(root.join("empty_class")).unwrap();
    let e = image_folder::load(root, &ImageFolderOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Malformed { .. }), "{e}");

    save(&root.join("a/1.png"), 4, 4);
    save(&root.join("a/2.png"), 5, 4);
    let e = image_folder::load(root, &ImageFolderOptions::default()).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::WrongSize {
                expected: (4, 4),
                found: (5, 4),
                ..
            }
        ),
        "{e}"
    );
    let e = image_folder::load(root, &ImageFolderOptions::require(5, 4)).unwrap_err();
    assert!(
        matches!(e, DataError::WrongSize { found: (4, 4), .. }),
        "{e}"
    );

    let other = tempdir();
    save(&other.path().join("a/ok.png"), 4, 4);
    write(other.path(), "a/garbage.png", b"this is not a png");
    let e = image_folder::load(other.path(), &ImageFolderOptions::default()).unwrap_err();
    assert!(
        matches!(&e, DataError::Decode { path, .. } if path.ends_with("garbage.png")),
        "{e}"
    );

    let png = std::fs::read(other.path().join("a/ok.png")).unwrap();
    write(other.path(), "a/garbage.png", &png[..png.len() / 2]);
    let e = image_folder::load(other.path(), &ImageFolderOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Decode { .. }), "{e}");
}

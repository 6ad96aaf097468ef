//! Labelled images from a folder with one subfolder per class, like torchvision's
//! `ImageFolder`:
//!
//! ```text
//! root/cat/001.png
//! root/cat/002.jpg
//! root/dog/a.jpeg
//! ```
//!
//! Class names are the subfolder names, sorted; a class's index is its position in that order.
//! PNG and JPEG files (by extension, case-insensitive) are read, in sorted order within each
//! class; other files, hidden entries and files directly under `root` are ignored. Images are
//! decoded eagerly into one `f32 [N, C, H, W]` tensor in [0, 1].
//!
//! ```no_run
//! use kiln_data::image_folder::{self, ImageFolderOptions};
//! let data = image_folder::load("data/pets", &ImageFolderOptions::resize_to(64, 64))?;
//! println!("{} images of {:?}", data.len(), data.classes);
//! # Ok::<(), kiln_data::DataError>(())
//! ```

use crate::dataset::TensorDataset;
use crate::error::{DataError, Result};
use image::imageops::FilterType;
use image::{DynamicImage, ImageReader};
use kiln_core::Tensor;
use std::path::{Path, PathBuf};

/// The colour channels to decode to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorMode {
    /// Three channels, red, green, blue (the default).
    #[default]
    Rgb,
    /// One grey channel.
    Gray,
}

impl ColorMode {
    /// Channels per pixel.
    pub fn channels(self) -> usize {
        match self {
            ColorMode::Rgb => 3,
            ColorMode::Gray => 1,
        }
    }
}

/// How to decode the images.
#[derive(Clone, Copy, Debug, Default)]
pub struct ImageFolderOptions {
    /// The (width, height) every image must have. `None`: every image must have the size of
    /// the first one.
    pub size: Option<(u32, u32)>,
    /// With a `size`, resize images of another size (bilinear) instead of rejecting them with
    /// [`DataError::WrongSize`].
    pub resize: bool,
    /// The channels to decode to.
    pub color: ColorMode,
}

impl ImageFolderOptions {
    /// Requires every image to be exactly `width × height`.
    pub fn require(width: u32, height: u32) -> Self {
        ImageFolderOptions {
            size: Some((width, height)),
            resize: false,
            color: ColorMode::Rgb,
        }
    }

    /// Resizes every image to `width × height`.
    pub fn resize_to(width: u32, height: u32) -> Self {
        ImageFolderOptions {
            size: Some((width, height)),
            resize: true,
            color: ColorMode::Rgb,
        }
    }

    /// Sets the colour mode.
    pub fn color(mut self, color: ColorMode) -> Self {
        self.color = color;
        self
    }
}

/// The images found under a root folder, not yet decoded.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    /// The root folder.
    pub root: PathBuf,
    /// Class names (subfolder names), sorted; a label is an index into this list.
    pub classes: Vec<String>,
    /// Every image file with its class index, class by class, files sorted.
    pub entries: Vec<(PathBuf, usize)>,
}

/// An image folder decoded into tensors.
#[derive(Clone, Debug)]
pub struct ImageFolderData {
    /// `f32 [N, C, H, W]` pixels in [0, 1].
    pub images: Tensor,
    /// `i64 [N]` class indices.
    pub labels: Tensor,
    /// Class names by index.
    pub classes: Vec<String>,
    /// The file of each image.
    pub paths: Vec<PathBuf>,
}

impl ImageFolderData {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// A dataset of (`f32 [C, H, W]`, `i64` label) samples.
    pub fn to_dataset(&self) -> TensorDataset {
        TensorDataset::new(self.images.clone(), self.labels.clone())
    }
}

/// True for file names the reader decodes.
fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// The sorted, non-hidden entries of `dir` for which `keep` holds.
fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let read = std::fs::read_dir(dir).map_err(|e| DataError::from_io(dir, e))?;
    let mut paths = Vec::new();
    for entry in read {
        let path = entry.map_err(|e| DataError::from_io(dir, e))?.path();
        if !is_hidden(&path) && keep(&path) {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

impl ImageFolder {
    /// Lists the classes and image files under `root` without decoding them.
    ///
    /// Errors: [`DataError::Missing`] if `root` does not exist; [`DataError::Malformed`] if it
    /// holds no class folder or no image.
    pub fn scan(root: impl AsRef<Path>) -> Result<ImageFolder> {
        let root = root.as_ref();
        if !root.is_dir() {
            return Err(DataError::Missing { path: root.into() });
        }
        let class_dirs = sorted_entries(root, Path::is_dir)?;
        if class_dirs.is_empty() {
            return Err(DataError::Malformed {
                path: root.into(),
                reason: "no class subfolders".into(),
            });
        }
        let mut classes = Vec::new();
        let mut entries = Vec::new();
        for (label, dir) in class_dirs.iter().enumerate() {
            classes.push(
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            for file in sorted_entries(dir, |p| p.is_file() && is_image(p))? {
                entries.push((file, label));
            }
        }
        if entries.is_empty() {
            return Err(DataError::Malformed {
                path: root.into(),
                reason: "no PNG or JPEG images in the class subfolders".into(),
            });
        }
        Ok(ImageFolder {
            root: root.into(),
            classes,
            entries,
        })
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no images (never, for a successful [`scan`](Self::scan)).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Decodes every image into one tensor, all of one size (see [`ImageFolderOptions`]).
    pub fn load(&self, options: &ImageFolderOptions) -> Result<ImageFolderData> {
        let mut size = options.size;
        let mut pixels = Vec::new();
        for (path, _) in &self.entries {
            let (data, w, h) = decode(path, size, options)?;
            size.get_or_insert((w, h));
            pixels.extend_from_slice(&data);
        }
        let (w, h) = size.expect("at least one image was decoded");
        let n = self.entries.len();
        Ok(ImageFolderData {
            images: Tensor::from_vec(
                pixels,
                [n, options.color.channels(), h as usize, w as usize],
            ),
            labels: Tensor::from_vec(
                self.entries
                    .iter()
                    .map(|&(_, l)| l as i64)
                    .collect::<Vec<_>>(),
                [n],
            ),
            classes: self.classes.clone(),
            paths: self.entries.iter().map(|(p, _)| p.clone()).collect(),
        })
    }
}

/// Scans `root` and decodes every image (see [`ImageFolder::scan`] and [`ImageFolder::load`]).
pub fn load(root: impl AsRef<Path>, options: &ImageFolderOptions) -> Result<ImageFolderData> {
    ImageFolder::scan(root)?.load(options)
}

/// Decodes one image file to `f32 [C, H, W]` in [0, 1], checking or resizing it to
/// `options.size` if set. Errors: [`DataError::Missing`], [`DataError::Decode`],
/// [`DataError::WrongSize`].
pub fn load_image(path: impl AsRef<Path>, options: &ImageFolderOptions) -> Result<Tensor> {
    let (data, w, h) = decode(path.as_ref(), options.size, options)?;
    Ok(Tensor::from_vec(
        data,
        [options.color.channels(), h as usize, w as usize],
    ))
}

/// Decodes `path` to channel-major f32 pixels and its (width, height).
fn decode(
    path: &Path,
    size: Option<(u32, u32)>,
    options: &ImageFolderOptions,
) -> Result<(Vec<f32>, u32, u32)> {
    let decode_error = |reason: String| DataError::Decode {
        path: path.into(),
        reason,
    };
    let img: DynamicImage = ImageReader::open(path)
        .map_err(|e| DataError::from_io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::from_io(path, e))?
        .decode()
        .map_err(|e| match e {
            image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                decode_error(format!("unexpected end of file: {io}"))
            }
            other => decode_error(other.to_string()),
        })?;
    let found = (img.width(), img.height());
    let img = match size {
        Some(wanted) if wanted != found => {
            if !options.resize {
                return Err(DataError::WrongSize {
                    path: path.into(),
                    expected: wanted,
                    found,
                });
            }
            img.resize_exact(wanted.0, wanted.1, FilterType::Triangle)
        }
        _ => img,
    };
    let (w, h) = (img.width(), img.height());
    let plane = (w * h) as usize;
    let raw: Vec<u8> = match options.color {
        ColorMode::Rgb => img.to_rgb8().into_raw(),
        ColorMode::Gray => img.to_luma8().into_raw(),
    };
    let c = options.color.channels();
    // Interleaved HWC bytes → planar CHW floats.
    let mut out = vec![0f32; raw.len()];
    for (p, px) in raw.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            out[ch * plane + p] = f32::from(v) / 255.0;
        }
    }
    Ok((out, w, h))
}

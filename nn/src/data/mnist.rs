//! MNIST-format image sets (MNIST, Fashion-MNIST): a folder holding
//! `{train,t10k}-{images-idx3,labels-idx1}-ubyte`, each optionally gzipped (`.gz`).

use super::{fetched_dir, idx, idx::IdxData, LabeledData};
use plies_autodiff::{Error, Result};
use std::path::{Path, PathBuf};

/// Which part of an MNIST-format set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// `train-*` (60,000 images in MNIST and Fashion-MNIST).
    Train,
    /// `t10k-*` (10,000 images).
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Fashion-MNIST's class names, by label.
pub const FASHION_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// Fashion-MNIST from `fetched_dir()/fashion-mnist` (run `scripts/fetch_data.sh` first).
pub fn fashion_mnist(split: Split) -> Result<LabeledData> {
    load_dir(fetched_dir().join("fashion-mnist"), split)
}

/// An MNIST-format split from `dir`: features `[1, rows, cols]` scaled from 0..255 to 0..1,
/// labels 0..9.
pub fn load_dir(dir: impl AsRef<Path>, split: Split) -> Result<LabeledData> {
    let dir = dir.as_ref();
    let images_path = find(dir, &format!("{}-images-idx3-ubyte", split.prefix()))?;
    let labels_path = find(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
    load_files(&images_path, &labels_path)
}

/// Images (`[n, rows, cols]` u8) and labels (`[n]` u8, 0..9) from two IDX files.
pub fn load_files(images_path: &Path, labels_path: &Path) -> Result<LabeledData> {
    let images = idx::read(images_path)?;
    let labels = idx::read(labels_path)?;
    let shape_error = |path: &Path, msg: String| Error::Format {
        path: path.display().to_string(),
        at: "byte 0 (header)".into(),
        msg,
    };
    let (n, rows, cols) = match (&images.data, images.dims.as_slice()) {
        (IdxData::U8(_), &[n, r, c]) => (n, r, c),
        (d, dims) => {
            return Err(shape_error(
                images_path,
                format!("expected u8 images of shape [n, rows, cols], found {} of shape {dims:?}", d.type_name()),
            ))
        }
    };
    let label_values = match (&labels.data, labels.dims.as_slice()) {
        (IdxData::U8(v), &[m]) if m == n => v,
        (d, dims) => {
            return Err(shape_error(
                labels_path,
                format!("expected {n} u8 labels (shape [{n}]), found {} of shape {dims:?}", d.type_name()),
            ))
        }
    };
    if let Some(i) = label_values.iter().position(|&l| l >= 10) {
        let at = 4 + 4 * labels.dims.len() + i;
        return Err(Error::Format {
            path: labels_path.display().to_string(),
            at: format!("IDX byte {at} (label {i})"),
            msg: format!("label {} is outside 0..10", label_values[i]),
        });
    }
    let features = images.data.to_f32().into_iter().map(|v| v / 255.0).collect();
    let labels = label_values.iter().map(|&l| l as i32).collect();
    LabeledData::new(features, &[1, rows, cols], labels, 10)
}

/// `dir/name.gz` or `dir/name`, or an error saying how to get the files.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    for candidate in [dir.join(format!("{name}.gz")), dir.join(name)] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::io(
        dir.join(format!("{name}.gz")),
        format!("not found (nor {name}); run scripts/fetch_data.sh to fetch Fashion-MNIST, or set PLIES_DATA_DIR"),
    ))
}

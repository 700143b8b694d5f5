//! Datasets, loaders, seeded shuffling and batching.
//!
//! A [`Dataset`] gathers examples by index into a [`Batch`] of tensors on a device; a
//! [`DataLoader`] walks a dataset in batches, shuffled with a seed. The embedded defaults
//! ([`digits::load`], [`text::CharDataset::shakespeare`]) need no files; larger sets
//! (Fashion-MNIST, Moby Dick) come from `scripts/fetch_data.sh` into `data/fetched/`.

pub mod digits;
mod gz;
pub mod idx;
mod labeled;
mod loader;
pub mod mnist;
pub mod text;

pub use labeled::LabeledData;
pub use loader::{Batches, DataLoader, Position, Stream};
pub use text::{CharDataset, CharWindows, Vocab};

use plies_autodiff::{Device, Result, Tensor};
use std::path::PathBuf;

/// Inputs and targets of a batch of examples, stacked along a new leading axis.
#[derive(Clone, Debug)]
pub struct Batch {
    pub inputs: Tensor,
    pub targets: Tensor,
}

impl Batch {
    /// The number of examples (the leading dimension of `inputs`).
    pub fn len(&self) -> usize {
        self.inputs.dims().first().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A finite, indexable collection of examples.
pub trait Dataset {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gather the examples at `indices` (in that order) into one batch on `device`.
    fn batch(&self, indices: &[usize], device: Device) -> Result<Batch>;
}

/// Where fetched datasets live: `$PLIES_DATA_DIR` if set, else the repository's `data/fetched/`
/// (found from this crate's source folder, so examples work from any working directory).
pub fn fetched_dir() -> PathBuf {
    match std::env::var_os("PLIES_DATA_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/fetched")),
    }
}

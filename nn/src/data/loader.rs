//! `DataLoader`: batches over a dataset, in a seeded shuffled order per epoch.

use super::{Batch, Dataset};
use plies_autodiff::{Device, Error, Result};
use plies_core::rng::{splitmix64, Rng};

/// Where a [`Stream`] stands: the epoch and the index within it of the next batch. Since an
/// epoch's order depends only on `(seed, epoch)`, this is all a training state needs to resume
/// the stream ([`DataLoader::stream_from`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub epoch: u64,
    pub batch: u64,
}

/// Walks a [`Dataset`] in batches of `batch_size`.
///
/// With [`shuffle`](DataLoader::shuffle), epoch `e` visits the examples in an order that depends
/// only on `(seed, e)`: rerunning with the same seed reproduces every batch, and an epoch can be
/// replayed without replaying the ones before it. Without it, examples come in index order.
#[derive(Debug)]
pub struct DataLoader<'a, D: Dataset + ?Sized> {
    data: &'a D,
    batch_size: usize,
    seed: Option<u64>,
    drop_last: bool,
    device: Device,
}

// Manual: a derive would require `D: Clone`, but only the reference is copied.
impl<D: Dataset + ?Sized> Clone for DataLoader<'_, D> {
    fn clone(&self) -> Self {
        DataLoader { ..*self }
    }
}

impl<'a, D: Dataset + ?Sized> DataLoader<'a, D> {
    /// In order, keeping a last partial batch, on the CPU. Panics if `batch_size` is 0.
    pub fn new(data: &'a D, batch_size: usize) -> Self {
        assert!(batch_size > 0, "DataLoader::new: batch_size must be at least 1");
        DataLoader { data, batch_size, seed: None, drop_last: false, device: Device::Cpu }
    }

    /// Shuffle each epoch with a permutation drawn from `seed` and the epoch number.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Skip the last batch of an epoch when it has fewer than `batch_size` examples.
    pub fn drop_last(mut self, on: bool) -> Self {
        self.drop_last = on;
        self
    }

    /// Put batches on `device`.
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn batches_per_epoch(&self) -> usize {
        let n = self.data.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The order in which epoch `epoch` visits the examples.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        match self.seed {
            Some(seed) => Rng::new(splitmix64(seed) ^ splitmix64(epoch ^ 0xe90c)).permutation(self.data.len()),
            None => (0..self.data.len()).collect(),
        }
    }

    /// The batches of one epoch.
    pub fn epoch(&self, epoch: u64) -> Batches<'a, D> {
        self.epoch_from(epoch, 0)
    }

    /// The batches of epoch `epoch` from batch `batch` on (none when `batch` is past the end).
    fn epoch_from(&self, epoch: u64, batch: u64) -> Batches<'a, D> {
        let order = self.order(epoch);
        let skip = usize::try_from(batch).unwrap_or(usize::MAX).saturating_mul(self.batch_size).min(order.len());
        Batches {
            data: self.data,
            order,
            batch_size: self.batch_size,
            drop_last: self.drop_last,
            device: self.device,
            pos: skip,
        }
    }

    /// Batches of epoch 0, then epoch 1, and so on without end (take as many steps as you need).
    /// Yields one error, then stops, if an epoch would hold no batch at all.
    pub fn stream(&self) -> Stream<'a, D> {
        self.stream_from(Position::default())
    }

    /// The stream of [`stream`](Self::stream) from `pos` on (as saved by [`Stream::position`]),
    /// without gathering the batches before it.
    pub fn stream_from(&self, pos: Position) -> Stream<'a, D> {
        let current = (pos != Position::default()).then(|| self.epoch_from(pos.epoch, pos.batch));
        Stream { loader: self.clone(), epoch: pos.epoch, current, failed: false }
    }
}

/// The batches of one epoch: `Result<Batch>` items (gathering or uploading can fail).
pub struct Batches<'a, D: Dataset + ?Sized> {
    data: &'a D,
    order: Vec<usize>,
    batch_size: usize,
    drop_last: bool,
    device: Device,
    pos: usize,
}

impl<D: Dataset + ?Sized> Iterator for Batches<'_, D> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        let left = self.order.len() - self.pos;
        if left == 0 || (self.drop_last && left < self.batch_size) {
            return None;
        }
        let end = self.pos + left.min(self.batch_size);
        let idx = &self.order[self.pos..end];
        self.pos = end;
        Some(self.data.batch(idx, self.device))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.order.len() - self.pos;
        let n = if self.drop_last { left / self.batch_size } else { left.div_ceil(self.batch_size) };
        (n, Some(n))
    }
}

impl<D: Dataset + ?Sized> ExactSizeIterator for Batches<'_, D> {}

/// Endless batches across epochs; see [`DataLoader::stream`].
pub struct Stream<'a, D: Dataset + ?Sized> {
    loader: DataLoader<'a, D>,
    epoch: u64,
    current: Option<Batches<'a, D>>,
    failed: bool,
}

impl<D: Dataset + ?Sized> Stream<'_, D> {
    /// The epoch of the batch yielded last (0 before the first).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The position of the next batch: `stream_from(position())` goes on with the same batches.
    pub fn position(&self) -> Position {
        let Some(cur) = &self.current else { return Position { epoch: self.epoch, batch: 0 } };
        if cur.len() == 0 {
            return Position { epoch: self.epoch + 1, batch: 0 };
        }
        Position { epoch: self.epoch, batch: cur.pos.div_ceil(self.loader.batch_size) as u64 }
    }
}

impl<D: Dataset + ?Sized> Iterator for Stream<'_, D> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.failed {
            return None;
        }
        // An epoch without batches would make this loop forever: report it instead.
        if self.loader.batches_per_epoch() == 0 {
            self.failed = true;
            return Some(Err(Error::invalid(
                "DataLoader::stream",
                format!(
                    "an epoch has no batch: {} examples, batch size {}, drop_last {}",
                    self.loader.data.len(),
                    self.loader.batch_size,
                    self.loader.drop_last
                ),
            )));
        }
        loop {
            if let Some(b) = self.current.as_mut().and_then(Iterator::next) {
                return Some(b);
            }
            if self.current.is_some() {
                self.epoch += 1;
            }
            self.current = Some(self.loader.epoch(self.epoch));
        }
    }
}

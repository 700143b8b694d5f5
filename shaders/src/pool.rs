//! A bounded cache of device buffers. Sizes are rounded up to classes (four per power of
//! two, so at most 25% is wasted) and a dropped storage's buffer goes back to its class for
//! a later allocation of that class; past the cache limit the least recently returned
//! buffers are freed.
//!
//! An allocation takes the free buffer of its class that sorts first (wgpu's handle order),
//! not the last one returned: what it gets then depends on which buffers are free, not on
//! the order they came back in. A training loop that allocates and frees alike each step
//! settles into the same buffers every step or two, and so finds its bind groups cached
//! (bindings.rs); returning the last buffer instead shuffled them from step to step.
//!
//! A buffer that is about to be filled from the host (`queue.write_buffer`) must not have
//! been used by a dispatch of the batch still being recorded: such writes run before the
//! whole batch when it is submitted. Each returned buffer therefore remembers the batch it
//! was returned in, and host-filled allocations only take buffers returned before it.
//!
//! Buffers the pool frees are not destroyed here but handed to the backend
//! (`take_doomed`), which first drops the cached bind groups that hold them.

use std::collections::HashMap;

/// Smallest buffer: also keeps bindings non-empty for zero-element tensors.
pub(crate) const MIN_BYTES: u64 = 256;

/// Statistics of the pool, in bytes and counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes in buffers held by live storages (rounded up to their class).
    pub live: u64,
    /// Bytes in returned buffers waiting for reuse.
    pub cached: u64,
    /// The largest `live` seen.
    pub peak: u64,
    /// The cache bound: returned buffers beyond it are freed.
    pub limit: u64,
    /// Allocations served from the cache.
    pub hits: u64,
    /// Allocations that created a new buffer.
    pub misses: u64,
    /// Returned buffers freed to stay under the limit.
    pub evictions: u64,
}

struct Cached {
    buffer: wgpu::Buffer,
    /// The batch that was open when the buffer came back.
    batch: u64,
    /// Order of return, for evicting the oldest first.
    stamp: u64,
}

pub(crate) struct Pool {
    free: HashMap<u64, Vec<Cached>>,
    stats: PoolStats,
    stamp: u64,
    /// Freed buffers, for the backend to let go of.
    doomed: Vec<wgpu::Buffer>,
}

/// The class a request of `bytes` is served from.
pub(crate) fn size_class(bytes: u64, max_bytes: u64) -> u64 {
    let b = bytes.max(MIN_BYTES);
    let top = 63 - b.leading_zeros() as u64;
    let step = if top >= 2 { 1u64 << (top - 2) } else { 1 };
    let class = b.div_ceil(step) * step;
    // Never round past what one binding may hold: then the exact (4-aligned) size is used.
    if class > max_bytes {
        b.div_ceil(4) * 4
    } else {
        class
    }
}

impl Pool {
    pub(crate) fn new(limit: u64) -> Self {
        Pool { free: HashMap::new(), stats: PoolStats { limit, ..Default::default() }, stamp: 0, doomed: Vec::new() }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        self.stats
    }

    /// The first (in handle order) cached buffer of `class` that may be used, if any.
    /// `host_write_batch` is the open batch when the caller will fill the buffer from the host.
    pub(crate) fn take(&mut self, class: u64, host_write_batch: Option<u64>) -> Option<wgpu::Buffer> {
        let list = self.free.get_mut(&class)?;
        let pos = list
            .iter()
            .enumerate()
            .filter(|(_, c)| host_write_batch.is_none_or(|open| c.batch < open))
            .min_by(|a, b| a.1.buffer.cmp(&b.1.buffer))
            .map(|(i, _)| i)?;
        let c = list.swap_remove(pos);
        self.stats.cached -= class;
        self.stats.hits += 1;
        self.note_live(class);
        Some(c.buffer)
    }

    /// Count a freshly created buffer as live.
    pub(crate) fn created(&mut self, class: u64) {
        self.stats.misses += 1;
        self.note_live(class);
    }

    fn note_live(&mut self, class: u64) {
        self.stats.live += class;
        self.stats.peak = self.stats.peak.max(self.stats.live);
    }

    /// Take a buffer back from a dropped storage during batch `batch`.
    pub(crate) fn give(&mut self, buffer: wgpu::Buffer, class: u64, batch: u64) {
        self.stats.live -= class;
        if class > self.stats.limit {
            self.stats.evictions += 1;
            self.doomed.push(buffer);
            return;
        }
        while self.stats.cached + class > self.stats.limit {
            if !self.evict_oldest() {
                break;
            }
        }
        self.stamp += 1;
        self.stats.cached += class;
        self.free.entry(class).or_default().push(Cached { buffer, batch, stamp: self.stamp });
    }

    fn evict_oldest(&mut self) -> bool {
        let oldest = self
            .free
            .iter()
            .filter_map(|(&class, list)| {
                list.iter().enumerate().min_by_key(|(_, c)| c.stamp).map(|(i, c)| (c.stamp, class, i))
            })
            .min();
        let Some((_, class, i)) = oldest else { return false };
        let c = self.free.get_mut(&class).unwrap().swap_remove(i);
        self.doomed.push(c.buffer);
        self.stats.cached -= class;
        self.stats.evictions += 1;
        true
    }

    /// Free every cached buffer (after an out-of-memory, or on request).
    pub(crate) fn trim(&mut self) {
        for (_, list) in self.free.drain() {
            self.doomed.extend(list.into_iter().map(|c| c.buffer));
        }
        self.stats.cached = 0;
    }

    /// The buffers freed since the last call, for the caller to let go of.
    pub(crate) fn take_doomed(&mut self) -> Vec<wgpu::Buffer> {
        std::mem::take(&mut self.doomed)
    }

    pub(crate) fn set_limit(&mut self, limit: u64) {
        self.stats.limit = limit;
        while self.stats.cached > limit && self.evict_oldest() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_up_by_at_most_a_quarter() {
        assert_eq!(size_class(1, 1 << 30), 256);
        assert_eq!(size_class(256, 1 << 30), 256);
        assert_eq!(size_class(257, 1 << 30), 320);
        assert_eq!(size_class(1000, 1 << 30), 1024);
        for b in [300u64, 4097, 1 << 20, (1 << 20) + 1, 123_456_789] {
            let c = size_class(b, 1 << 40);
            assert!(c >= b && (c - b) * 4 <= b, "{b} -> {c}");
        }
        // Near the binding limit the exact size is used.
        assert_eq!(size_class(1000, 1000), 1000);
    }
}

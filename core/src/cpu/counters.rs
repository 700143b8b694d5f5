//! Bytes held by live CPU storages, and the most ever held at once: what tests check to see
//! that backward frees memory, and what the memory reports and soak runs read.

use std::sync::atomic::{AtomicU64, Ordering};

static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

pub(crate) fn allocated(bytes: u64) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

pub(crate) fn freed(bytes: u64) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

/// Bytes held by live CPU storages.
pub fn live_bytes() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

/// The most bytes live CPU storages held at once since the process started.
pub fn peak_bytes() -> u64 {
    PEAK.load(Ordering::Relaxed)
}

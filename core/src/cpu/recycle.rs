//! A bounded cache of freed output buffers, so a training loop that allocates the same
//! sizes every step reuses warm memory instead of asking the kernel for fresh pages.
//!
//! Why: glibc hands multi-MiB buffers back to the OS (munmap or heap trim) once freed, and
//! the next step's first touch of each page then costs a fault and a page clear. On the
//! 2-core VM that was a sixth of W3's step time (perf: 286K page faults and 1 s of system
//! time in 20 steps; 50K and 0.35 s with the buffers kept).
//!
//! Buffers are matched by element size, alignment and exact capacity; the oldest go first when the
//! budget is exceeded. Budget: `PLIES_CPU_CACHE_MB` (default 512; 0 turns caching off).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Smaller buffers come from malloc's own free lists quickly; caching them buys nothing.
const MIN_BYTES: usize = 256 << 10;

/// A freed allocation, kept by what `Vec::from_raw_parts` needs to take it back: any
/// element type of the same size and alignment may reuse it, at the same capacity.
struct Entry {
    ptr: *mut u8,
    size: usize,
    align: usize,
    capacity: usize,
}

impl Entry {
    fn bytes(&self) -> usize {
        self.size * self.capacity
    }
}

// SAFETY: an entry owns its allocation exclusively (it came from a Vec that was given
// up), so moving it to another thread is like moving the Vec.
unsafe impl Send for Entry {}

impl Drop for Entry {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.bytes(), self.align).expect("a valid Vec layout");
        // SAFETY: `ptr` was allocated by the global allocator with exactly this layout
        // (a Vec's buffer of `capacity` elements of this size and alignment).
        unsafe { std::alloc::dealloc(self.ptr, layout) };
    }
}

struct Cache {
    entries: VecDeque<Entry>,
    bytes: usize,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache { entries: VecDeque::new(), bytes: 0 });
static CACHED: AtomicU64 = AtomicU64::new(0);

fn budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        let mb = std::env::var("PLIES_CPU_CACHE_MB").ok().and_then(|v| v.trim().parse::<usize>().ok());
        mb.unwrap_or(512) << 20
    })
}

fn lock() -> std::sync::MutexGuard<'static, Cache> {
    // Every change under the lock is a push or a remove, so a poisoned cache is still
    // consistent.
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

/// An empty vector with capacity exactly `n`, recycled when a freed buffer of that
/// capacity and element size and alignment is cached. Only for plain-data elements
/// (`Copy`): the buffer's old bytes are never read, only overwritten.
pub(crate) fn take<U>(n: usize) -> Option<Vec<U>> {
    let (size, align) = (std::mem::size_of::<U>(), std::mem::align_of::<U>());
    if size == 0 || n * size < MIN_BYTES || budget() == 0 {
        return None;
    }
    let mut cache = lock();
    // Newest first: the most recently freed buffer is the likeliest to be in cache.
    let pos = cache.entries.iter().rposition(|e| e.size == size && e.align == align && e.capacity == n)?;
    let entry = cache.entries.remove(pos)?;
    cache.bytes -= entry.bytes();
    CACHED.store(cache.bytes as u64, Ordering::Relaxed);
    drop(cache);
    let entry = std::mem::ManuallyDrop::new(entry);
    // SAFETY: the buffer was allocated for `n` elements of this size and alignment and is
    // owned by the entry, whose drop we skip; length 0 means nothing is read.
    Some(unsafe { Vec::from_raw_parts(entry.ptr.cast::<U>(), 0, n) })
}

/// Offers a vector that is no longer needed to the cache (or frees it).
pub(crate) fn give<U: Copy>(v: Vec<U>) {
    let (size, align) = (std::mem::size_of::<U>(), std::mem::align_of::<U>());
    let bytes = v.capacity() * size;
    let limit = budget();
    if size == 0 || bytes < MIN_BYTES || bytes > limit {
        return;
    }
    let mut v = std::mem::ManuallyDrop::new(v);
    let entry = Entry { ptr: v.as_mut_ptr().cast::<u8>(), size, align, capacity: v.capacity() };
    let mut evicted = Vec::new();
    {
        let mut cache = lock();
        while cache.bytes + bytes > limit {
            let Some(old) = cache.entries.pop_front() else { break };
            cache.bytes -= old.bytes();
            evicted.push(old);
        }
        cache.bytes += bytes;
        cache.entries.push_back(entry);
        CACHED.store(cache.bytes as u64, Ordering::Relaxed);
    }
    // Freed outside the lock: returning big buffers to the OS takes a while.
    drop(evicted);
}

/// Bytes held in the cache now.
pub fn cached_bytes() -> u64 {
    CACHED.load(Ordering::Relaxed)
}

/// Frees every cached buffer (like `torch.cuda.empty_cache`, for the CPU).
pub fn empty_cache() {
    let entries = {
        let mut cache = lock();
        cache.bytes = 0;
        CACHED.store(0, Ordering::Relaxed);
        std::mem::take(&mut cache.entries)
    };
    drop(entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    // Sizes no kernel allocates (kernels only make 4- and 8-byte elements), so tests
    // running in parallel never take these buffers.
    #[derive(Clone, Copy)]
    struct A(#[allow(dead_code)] [u8; 3]);
    #[derive(Clone, Copy)]
    #[repr(align(2))]
    struct B(#[allow(dead_code)] [u8; 6]);

    #[test]
    fn reuses_a_freed_buffer_of_the_same_type_and_capacity() {
        let n = MIN_BYTES; // 3 bytes each: 3x the minimum
        let mut v: Vec<A> = Vec::with_capacity(n);
        v.extend(std::iter::repeat_n(A([1, 2, 3]), n));
        let ptr = v.as_ptr();
        give(v);
        assert!(take::<[u8; 6]>(n / 2).is_none(), "another element size must not be handed out");
        assert!(take::<A>(n + 1).is_none(), "another capacity must not be handed out");
        let again = take::<A>(n).expect("the cached buffer");
        assert_eq!((again.as_ptr(), again.len(), again.capacity()), (ptr, 0, n));
        assert!(take::<A>(n).is_none(), "a buffer is handed out once");
    }

    #[test]
    fn alignment_must_match_too() {
        let m = MIN_BYTES / 6 + 1;
        let v: Vec<B> = Vec::with_capacity(m);
        let ptr = v.as_ptr();
        give(v);
        assert!(take::<[u8; 6]>(m).is_none(), "a buffer aligned for B is not handed out for align 1");
        let again = take::<B>(m).expect("the cached buffer");
        assert_eq!(again.as_ptr(), ptr);
    }
}

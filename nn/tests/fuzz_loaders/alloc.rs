//! A counting global allocator: the peak of bytes live on this thread during a closure.
//!
//! Per thread, because the test harness runs the format tests in parallel threads and each
//! must see only its own loads. A `realloc` counts the new block before freeing the old, as
//! both exist while the data is copied.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Counting;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = ON.try_with(|on| {
        if on.get() {
            let live = LIVE.get() + delta;
            LIVE.set(live);
            if live > PEAK.get() {
                PEAK.set(live);
            }
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            note(l.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            note(l.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        note(-(l.size() as isize));
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new_size) };
        if !q.is_null() {
            note(new_size as isize);
            note(-(l.size() as isize));
        }
        q
    }
}

/// Run `f`, returning its result and the most bytes it had allocated at once on this thread
/// (what it returns is still live at the end, so the output counts).
pub fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    struct Off;
    impl Drop for Off {
        fn drop(&mut self) {
            ON.set(false);
        }
    }
    LIVE.set(0);
    PEAK.set(0);
    ON.set(true);
    let off = Off;
    let r = f();
    drop(off);
    (r, PEAK.get().max(0) as usize)
}

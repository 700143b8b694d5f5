//! Index errors found on the device, reported to the thread that issued the op.
//!
//! A kernel that checks indices gets a slot of the status buffer (its number in the
//! parameter block, word 15) and records the first bad index there (see `report` in
//! common.wgsl). Every readback copies the status words of the slots recorded so far, and
//! an error found in a slot is handed to the thread that recorded it: that thread's next
//! readback or `synchronize` returns it, and other threads are not disturbed.

use plies_core::Error;
use std::collections::HashMap;
use std::thread::ThreadId;

pub(crate) const SLOTS: usize = 1024;
/// Bytes of the status buffer: four u32 words per slot.
pub(crate) const STATUS_BYTES: u64 = SLOTS as u64 * 16;

/// Op names of the codes the kernels report (index.wgsl, cross_entropy.wgsl).
const OPS: [&str; 6] = ["", "index_select", "index_add", "gather", "scatter_add", "cross_entropy"];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Free,
    /// Used by a recorded dispatch, not yet read back.
    Recorded,
    /// Copied out by a readback in progress.
    Checking,
}

pub(crate) struct Slots {
    state: Vec<State>,
    owner: Vec<Option<ThreadId>>,
    next: usize,
    pending: HashMap<ThreadId, Error>,
}

impl Slots {
    pub(crate) fn new() -> Self {
        Slots { state: vec![State::Free; SLOTS], owner: vec![None; SLOTS], next: 0, pending: HashMap::new() }
    }

    /// A free slot for a dispatch of the current thread, if any is left.
    pub(crate) fn acquire(&mut self) -> Option<u32> {
        for k in 0..SLOTS {
            let s = (self.next + k) % SLOTS;
            if self.state[s] == State::Free {
                self.state[s] = State::Recorded;
                self.owner[s] = Some(std::thread::current().id());
                self.next = (s + 1) % SLOTS;
                return Some(s as u32);
            }
        }
        None
    }

    /// Called while the batch that a readback submits is closed: every recorded slot will
    /// have run when that readback's copy does.
    pub(crate) fn begin_check(&mut self) -> Vec<usize> {
        let mut v = Vec::new();
        for (s, st) in self.state.iter_mut().enumerate() {
            if *st == State::Recorded {
                *st = State::Checking;
                v.push(s);
            }
        }
        v
    }

    /// Hand out the errors in the copied status words and free the slots. `zero(s)` must
    /// schedule the clearing of slot s before it can be reused.
    pub(crate) fn finish_check(&mut self, checking: &[usize], words: &[u32], zero: impl Fn(usize)) {
        for &s in checking {
            let w = &words[4 * s..4 * s + 4];
            if w[0] != 0 {
                let op = OPS.get(w[1] as usize).copied().unwrap_or("gpu kernel");
                let e = Error::IndexOutOfRange { op, index: w[2] as i32 as i64, size: w[3] as usize };
                if let Some(t) = self.owner[s] {
                    self.pending.entry(t).or_insert(e);
                }
                zero(s);
            }
            self.state[s] = State::Free;
            self.owner[s] = None;
        }
    }

    /// Put back slots whose readback failed before their words were read.
    pub(crate) fn abandon(&mut self, checking: &[usize]) {
        for &s in checking {
            self.state[s] = State::Recorded;
        }
    }

    /// The first error found for the current thread, if any.
    pub(crate) fn take_error(&mut self) -> Option<Error> {
        self.pending.remove(&std::thread::current().id())
    }
}

//! What a backend has done: dispatches, submissions, readbacks, pipelines, bind groups, and
//! the host time spent recording and waiting.
use super::GpuBackend;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// How much work a backend has done: kernels recorded, batches submitted, host waits for
/// readback or synchronisation, distinct pipelines compiled, and bind groups created
/// (fewer than dispatches when the bind group cache finds them again), and two clocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub dispatches: u64,
    pub submissions: u64,
    pub readbacks: u64,
    pub pipelines: u64,
    pub bind_groups: u64,
    /// Host time spent recording dispatches (compiling a kernel on first use included;
    /// submitting full batches and waiting not): the part of launch overhead this crate
    /// controls.
    pub record_ns: u64,
    /// Host time spent in `queue.submit` and waiting for the device. The rest of a step's
    /// time is the host's own work, which a fast GPU cannot hide when kernels are small. (A
    /// software adapter runs the kernels inside `submit`.)
    pub device_ns: u64,
}

impl GpuBackend {
    /// Work counters since the device was opened.
    pub fn counters(&self) -> Counters {
        Counters {
            dispatches: self.dispatches.load(Ordering::Relaxed),
            submissions: self.serial.load(Ordering::SeqCst) - 1,
            readbacks: self.readbacks.load(Ordering::Relaxed),
            pipelines: self.pipelines.compiled() as u64,
            bind_groups: self.binds.lock().unwrap().created,
            record_ns: self.record_ns.load(Ordering::Relaxed),
            device_ns: self.device_ns.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_readback(&self) {
        self.readbacks.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_device_time(&self, since: Instant) {
        self.device_ns.fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Reuse bind groups across dispatches (the default; `PLIES_GPU_BIND_CACHE=0` starts
    /// with it off). Off, every dispatch creates its own, as before the cache existed: for
    /// measuring what the cache saves, and for ruling it out. The groups cached so far are
    /// kept for when it is turned on again.
    pub fn set_bind_group_cache(&self, enabled: bool) {
        self.binds.lock().unwrap().enabled = enabled;
    }

    /// Bind groups held by the cache now.
    pub fn cached_bind_groups(&self) -> usize {
        self.binds.lock().unwrap().len()
    }

    /// Number of distinct compiled pipelines (each compiled once).
    pub fn compiled_pipelines(&self) -> usize {
        self.pipelines.compiled()
    }
}

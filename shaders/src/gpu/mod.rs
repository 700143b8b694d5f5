//! `GpuBackend`: one wgpu device with its queue, the buffer pool, the pipeline cache and
//! the batch of recorded work. open.rs opens it, batch.rs records and submits work,
//! memory.rs hands out buffers, faults.rs turns device faults into errors, counters.rs
//! counts what was done.
//!
//! Execution is asynchronous: each op records a dispatch into the open batch (one command
//! encoder with one long compute pass) and returns at once. A batch is submitted when it
//! holds `MAX_BATCH` dispatches or its parameter arena is full, and when a value is read
//! back; only readback and `synchronize` wait. The parameter blocks of a batch's dispatches
//! go into one arena buffer, written once when the batch is submitted; each dispatch finds
//! its block through a dynamic offset, so bind groups are reused (see bindings.rs).

mod batch;
mod counters;
mod faults;
mod memory;
mod open;

pub(crate) use batch::Batch;
pub use counters::Counters;

use crate::bindings::BindCache;
use crate::kernels::PipelineCache;
use crate::pool::Pool;
use crate::status::Slots;
use crate::tune::Autotuner;
use faults::Faults;
use plies_core::{Device, Error};
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Dispatches per submitted batch.
pub(crate) const MAX_BATCH: u32 = 128;
/// Bytes of parameter blocks per batch.
pub(crate) const ARENA_BYTES: u64 = 1 << 20;
/// The smallest window of the arena a parameter binding covers (larger blocks get the
/// next power of two, so a kernel's bind groups come in few sizes).
pub(crate) const MIN_WINDOW: u64 = 256;
/// Submitted batches allowed to run ahead of the host before it waits for the oldest.
pub(crate) const MAX_IN_FLIGHT: usize = 16;
/// Threads per workgroup of the elementwise kernels (WG in common.wgsl).
pub(crate) const WG: u32 = 256;
/// Element indices in WGSL are u32; leave room for grid-stride arithmetic.
pub(crate) const MAX_ELEMS: u64 = (u32::MAX as u64) - (1 << 26);

pub struct GpuBackend {
    me: Weak<GpuBackend>,
    index: usize,
    pub(crate) wgpu: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: wgpu::AdapterInfo,
    is_software: bool,
    description: String,
    pub(crate) limits: wgpu::Limits,
    pub(crate) pipelines: PipelineCache,
    pool: Mutex<Pool>,
    pub(crate) batch: Mutex<Batch>,
    binds: Mutex<BindCache>,
    /// Serial number of the open batch.
    serial: AtomicU64,
    dispatches: AtomicU64,
    record_ns: AtomicU64,
    device_ns: AtomicU64,
    readbacks: AtomicU64,
    /// Index errors found by kernels, one slot per checked dispatch (see status.rs).
    pub(crate) status: wgpu::Buffer,
    pub(crate) slots: Mutex<Slots>,
    pub(crate) staging: Mutex<Option<wgpu::Buffer>>,
    faults: Arc<Mutex<Faults>>,
    /// The largest buffer one binding may hold, and the limit's name for error messages.
    pub(crate) max_bytes: u64,
    limit_name: &'static str,
    align: u64,
    pub(crate) timeout: Duration,
    pub(crate) tuner: Autotuner,
}

impl fmt::Debug for GpuBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GpuBackend(gpu:{}, {})", self.index, self.description)
    }
}

impl GpuBackend {
    pub(crate) fn arc(&self) -> Arc<GpuBackend> {
        self.me.upgrade().expect("the GPU backend is alive while its methods run")
    }

    pub fn index(&self) -> usize {
        self.index
    }

    /// This backend as a plies device id (`Device::Gpu(index)`).
    pub fn plies_device(&self) -> Device {
        Device::Gpu(self.index)
    }

    /// A software adapter (lavapipe, WARP): right answers, no speed.
    pub fn is_software(&self) -> bool {
        self.is_software
    }

    /// The adapter: name, API, kind and driver.
    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The wgpu device (for interop, and for tests that need to break it).
    pub fn wgpu_device(&self) -> &wgpu::Device {
        &self.wgpu
    }

    pub(crate) fn err(&self, msg: impl Into<String>) -> Error {
        Error::Backend { device: self.plies_device(), msg: msg.into() }
    }
}

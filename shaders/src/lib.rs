//! plies-shaders: the GPU backend of Plies, WGSL compute kernels on wgpu (Vulkan, Metal,
//! DX12; GL adapters are refused, see adapters.rs).
//!
//! [`register`] installs the backend in plies-core, after which `Device::Gpu(i)` resolves
//! to adapter `i` of [`adapters`] (best first). Every `Backend` op has a kernel in
//! `src/wgsl/<family>.wgsl`, reads its inputs through their strides (transposes, slices and
//! broadcasts cost no copy) and writes a fresh contiguous output. Work is recorded into
//! batches and submitted asynchronously; only reading a value back waits.
//!
//! f32 and i32 run on the GPU; f64 is an `UnsupportedDType` error. Random fills reproduce
//! the CPU backend's numbers (uniform and bernoulli bit for bit). A kernel that meets a bad
//! index skips it and records it; the error reaches the thread that issued the op at its
//! next readback or `synchronize`. Buffers larger than the adapter's binding limit are
//! refused with an error naming the limit; out-of-memory and a lost device are errors.
//!
//! Environment:
//! - `PLIES_GPU_CACHE_MB`: bytes the buffer pool keeps for reuse (default 4096).
//! - `PLIES_GPU_TIMEOUT_S`: longest wait for the device before an error (default 600).
//! - `PLIES_AUTOTUNE=0|1`: time matmul tiles per shape class (default: on for real GPUs,
//!   off for software adapters); `PLIES_AUTOTUNE_CACHE`: file of remembered choices
//!   (default `$XDG_CACHE_HOME/plies/matmul-<adapter>.txt`).
//! - `PLIES_GPU_BIND_CACHE=0`: create a bind group per dispatch instead of reusing them.
//! - `WGPU_BACKEND` etc. restrict which APIs wgpu tries (wgpu's own variables).

mod adapters;
mod backend;
mod bindings;
mod gpu;
mod kernels;
mod ops;
mod params;
mod pool;
mod status;
mod storage;
mod transfer;
mod tune;

pub use adapters::{adapters, best_real_gpu, no_adapter_reason, AdapterEntry};
pub use gpu::{Counters, GpuBackend};
pub use ops::MatmulConfig;
pub use pool::PoolStats;
pub use storage::GpuStorage;
pub use tune::{ShapeClass, TuneReport};

use plies_core::{Backend, Device, Result};
use std::sync::{Arc, Mutex};

/// Each adapter opened so far, or why it could not be.
type Opened = Vec<(usize, Result<Arc<GpuBackend>>)>;

/// Open (once per process) the backend of adapter `index`.
pub fn gpu(index: usize) -> Result<Arc<GpuBackend>> {
    static OPEN: Mutex<Opened> = Mutex::new(Vec::new());
    let mut open = OPEN.lock().unwrap();
    if let Some((_, r)) = open.iter().find(|(i, _)| *i == index) {
        return r.clone();
    }
    let r = GpuBackend::new(index);
    open.push((index, r.clone()));
    r
}

fn factory(index: usize) -> Result<Arc<dyn Backend>> {
    Ok(gpu(index)? as Arc<dyn Backend>)
}

/// Install this crate as plies-core's GPU backend (idempotent).
pub fn register() {
    plies_core::backend::register_gpu(factory);
}

/// The backend behind `device`, if it is a GPU of this crate.
pub fn gpu_of(device: Device) -> Option<Arc<GpuBackend>> {
    match device {
        Device::Gpu(i) => gpu(i).ok(),
        Device::Cpu => None,
    }
}

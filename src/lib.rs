//! Plies: a deep-learning framework for layer-wise training research.
//!
//! This facade re-exports the crates: `core` (arrays, backends), `autodiff` (Tensor), `nn`,
//! `peft` (layer-wise training methods) and `shaders` (the wgpu GPU backend), and picks the
//! device a program runs on: [`device`] reads `PLIES_DEVICE` (`cpu`, `gpu` or `gpu:N`) and
//! otherwise takes the best real GPU, falling back to the native CPU backend. Software GPU
//! adapters (lavapipe, WARP) are only used when asked for by name: they are for testing
//! kernels, not for speed. GL adapters are never used (see `plies_shaders::adapters`).
pub use plies_autodiff as autodiff;
pub use plies_core as core;
pub use plies_nn as nn;
pub use plies_peft as peft;
pub use plies_shaders as shaders;

use plies_core::{Device, Error, Result};
use std::sync::OnceLock;

/// Register the GPU backend with plies-core so that `Device::Gpu(i)` works (idempotent).
pub fn init() {
    plies_shaders::register();
}

/// Parse a `PLIES_DEVICE` value, or choose when it is unset: the best real GPU, else the
/// CPU. Opening a GPU here surfaces a missing or broken adapter as an error.
pub fn choose_device(setting: Option<&str>) -> Result<Device> {
    init();
    let device = match setting.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Device::parse(s)?,
        None => match plies_shaders::best_real_gpu() {
            Some(i) => Device::Gpu(i),
            None => Device::Cpu,
        },
    };
    if let Device::Gpu(i) = device {
        plies_shaders::gpu(i).map_err(|e| match e {
            Error::NoDevice { msg, .. } => Error::NoDevice { device, msg: format!("PLIES_DEVICE={device}: {msg}") },
            other => other,
        })?;
    }
    Ok(device)
}

/// The device of this process (chosen once from `PLIES_DEVICE`), announced on stderr:
/// the adapter's name for a GPU, the thread count for the CPU.
pub fn try_device() -> Result<Device> {
    static CHOSEN: OnceLock<Result<Device>> = OnceLock::new();
    CHOSEN
        .get_or_init(|| {
            let setting = std::env::var("PLIES_DEVICE").ok();
            let d = choose_device(setting.as_deref())?;
            eprintln!("plies: using {d}: {}", plies_core::backend(d)?.name());
            Ok(d)
        })
        .clone()
}

/// [`try_device`] for programs: when the requested device cannot be opened, prints the
/// reason on stderr and exits with code 1 (a user's setting is wrong, not the program, so no
/// panic and no backtrace). Call it before building a model.
pub fn device() -> Device {
    match try_device() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

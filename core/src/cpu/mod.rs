//! The native CPU backend: generic kernels over f32/f64 (i32 where it makes sense),
//! rayon across cores for large work, f32 matmul through our own AVX2 kernel (`sgemm`),
//! the rest through `gemm`.
//!
//! storage.rs holds the host buffers, counters.rs their live and peak bytes, backend.rs the
//! `Backend` impl, dispatch.rs the one way it picks a kernel by dtype; the other modules are
//! kernel families.

mod alloc;
mod backend;
mod counters;
mod dispatch;
mod elementwise;
mod fused;
mod index;
mod matmul;
mod reduce;
#[cfg(target_arch = "x86_64")]
mod sgemm;
mod simd;
mod storage;
pub(crate) mod strided;

pub use backend::CpuBackend;
pub use counters::{live_bytes, peak_bytes};
pub use storage::{CpuData, CpuStorage};

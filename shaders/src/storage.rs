//! `GpuStorage`: a device buffer holding f32 or i32 elements. Dropping it returns the
//! buffer to the pool (work already recorded keeps its own reference to the buffer).

use crate::gpu::GpuBackend;
use plies_core::backend::Storage;
use plies_core::{Backend, DType};
use std::any::Any;
use std::fmt;
use std::sync::Arc;

pub struct GpuStorage {
    buffer: Option<wgpu::Buffer>,
    class: u64,
    len: usize,
    dtype: DType,
    gpu: Arc<GpuBackend>,
}

impl GpuStorage {
    pub(crate) fn new(gpu: Arc<GpuBackend>, buffer: wgpu::Buffer, class: u64, len: usize, dtype: DType) -> Self {
        GpuStorage { buffer: Some(buffer), class, len, dtype, gpu }
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }

    pub fn gpu(&self) -> &Arc<GpuBackend> {
        &self.gpu
    }
}

impl Drop for GpuStorage {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            self.gpu.release(b, self.class);
        }
    }
}

impl fmt::Debug for GpuStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GpuStorage({} x {}, gpu:{})", self.len, self.dtype, self.gpu.index())
    }
}

impl Storage for GpuStorage {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn len(&self) -> usize {
        self.len
    }
    fn backend(&self) -> Arc<dyn Backend> {
        self.gpu.clone()
    }
}

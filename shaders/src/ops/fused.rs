use crate::gpu::GpuBackend;

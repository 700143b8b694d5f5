//! Opening an adapter: the device with the adapter's own limits, the parameter arena and
//! status buffer, and the settings read from the environment.
use super::batch::Batch;
use super::faults::Faults;
use super::{GpuBackend, ARENA_BYTES};
use crate::adapters::{adapters, AdapterEntry};
use crate::bindings::BindCache;
use crate::kernels::PipelineCache;
use crate::pool::Pool;
use crate::status::{Slots, STATUS_BYTES};
use crate::tune::Autotuner;
use plies_core::{Device, Error, Result};
use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn bind_cache_enabled() -> bool {
    std::env::var("PLIES_GPU_BIND_CACHE").map_or(true, |v| v != "0")
}

fn pool_limit() -> u64 {
    std::env::var("PLIES_GPU_CACHE_MB").ok().and_then(|v| v.parse::<u64>().ok()).map(|mb| mb << 20).unwrap_or(4 << 30)
}

impl GpuBackend {
    /// Open adapter `index` of [`adapters`] with the adapter's own limits.
    pub fn new(index: usize) -> Result<Arc<GpuBackend>> {
        let dev = Device::Gpu(index);
        let list = adapters();
        let entry: &AdapterEntry = list.get(index).ok_or_else(|| Error::NoDevice {
            device: dev,
            msg: if list.is_empty() {
                crate::adapters::no_adapter_reason()
            } else {
                let names: Vec<String> =
                    list.iter().enumerate().map(|(i, e)| format!("gpu:{i} {}", e.describe())).collect();
                format!("there are {} adapters: {}", list.len(), names.join("; "))
            },
        })?;
        let limits = entry.adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("plies"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(entry.adapter.request_device(&desc))
            .map_err(|e| Error::NoDevice { device: dev, msg: format!("{}: {e}", entry.describe()) })?;
        let faults = Faults::watch(&device);
        let (max_bytes, limit_name) = if limits.max_storage_buffer_binding_size <= limits.max_buffer_size {
            (limits.max_storage_buffer_binding_size, "max_storage_buffer_binding_size")
        } else {
            (limits.max_buffer_size, "max_buffer_size")
        };
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("plies params"),
            size: ARENA_BYTES,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let status = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("plies status"),
            size: STATUS_BYTES,
            usage,
            mapped_at_creation: false,
        });
        let timeout = std::env::var("PLIES_GPU_TIMEOUT_S").ok().and_then(|v| v.parse().ok()).unwrap_or(600u64);
        let is_software = entry.is_software();
        Ok(Arc::new_cyclic(|me| GpuBackend {
            me: me.clone(),
            index,
            wgpu: device,
            queue,
            info: entry.info.clone(),
            is_software,
            description: entry.describe(),
            align: limits.min_storage_buffer_offset_alignment.max(4) as u64,
            limits,
            pipelines: PipelineCache::default(),
            pool: Mutex::new(Pool::new(pool_limit())),
            batch: Mutex::new(Batch {
                encoder: None,
                pass: None,
                params: Vec::new(),
                arena,
                dispatches: 0,
                in_flight: VecDeque::new(),
            }),
            binds: Mutex::new(BindCache::new(bind_cache_enabled())),
            serial: AtomicU64::new(1),
            dispatches: AtomicU64::new(0),
            record_ns: AtomicU64::new(0),
            device_ns: AtomicU64::new(0),
            readbacks: AtomicU64::new(0),
            status,
            slots: Mutex::new(Slots::new()),
            staging: Mutex::new(None),
            faults,
            max_bytes,
            limit_name,
            timeout: Duration::from_secs(timeout),
            tuner: Autotuner::new(&entry.info, is_software),
        }))
    }
}

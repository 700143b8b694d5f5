//! Which GPUs exist, best first. `Device::Gpu(i)` is the i-th entry of [`adapters`]: real
//! GPUs before software ones, discrete before integrated, Vulkan before Metal and DX12, and
//! each physical device listed once.
//!
//! GL adapters are never listed. wgpu's GL backend serialises every call through one EGL
//! context, and under concurrent use (several threads recording and reading back, as the
//! test suites and any multi-threaded program do) wgpu-hal panics with "Could not lock
//! adapter context. This is most-likely a deadlock." Rather than a GPU backend that fails
//! at random, a machine with only GL gets a clear error that says what to install
//! ([`no_adapter_reason`]).

use std::sync::OnceLock;
use wgpu::{Backends, DeviceType};

/// One usable adapter.
#[derive(Debug, Clone)]
pub struct AdapterEntry {
    pub adapter: wgpu::Adapter,
    pub info: wgpu::AdapterInfo,
}

impl AdapterEntry {
    /// A software rasteriser on the CPU (lavapipe, WARP, SwiftShader): good for testing
    /// the kernels, never chosen by default.
    pub fn is_software(&self) -> bool {
        self.info.device_type == DeviceType::Cpu
    }

    /// A one-line description: name, API, kind and driver.
    pub fn describe(&self) -> String {
        let kind = match self.info.device_type {
            DeviceType::DiscreteGpu => "discrete GPU",
            DeviceType::IntegratedGpu => "integrated GPU",
            DeviceType::VirtualGpu => "virtual GPU",
            DeviceType::Cpu => "CPU (software)",
            DeviceType::Other => "other",
        };
        let driver = [&self.info.driver, &self.info.driver_info]
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let mut s = format!("{} ({:?}, {kind}", self.info.name, self.info.backend);
        if !driver.is_empty() {
            s.push_str(", ");
            s.push_str(&driver);
        }
        s.push(')');
        s
    }
}

fn instance() -> &'static wgpu::Instance {
    static INSTANCE: OnceLock<wgpu::Instance> = OnceLock::new();
    INSTANCE.get_or_init(|| {
        let desc =
            wgpu::InstanceDescriptor { backends: NATIVE, ..wgpu::InstanceDescriptor::new_without_display_handle() };
        wgpu::Instance::new(desc.with_env())
    })
}

/// The APIs Plies runs compute on.
const NATIVE: Backends = Backends::VULKAN.union(Backends::METAL).union(Backends::DX12);

/// Why [`adapters`] is empty, and what to install: names the GL adapters that were refused.
/// Computed once: GL is probed by one thread, on an instance of its own that is dropped
/// afterwards, since concurrent EGL calls are what deadlocks.
pub fn no_adapter_reason() -> String {
    static REASON: OnceLock<String> = OnceLock::new();
    REASON
        .get_or_init(|| {
            let gl_only = wgpu::InstanceDescriptor {
                backends: Backends::GL,
                ..wgpu::InstanceDescriptor::new_without_display_handle()
            };
            let gl = pollster::block_on(wgpu::Instance::new(gl_only).enumerate_adapters(Backends::GL));
            let install = "install a Vulkan driver: your GPU vendor's, or Mesa's lavapipe to test the \
                           kernels on the CPU (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers libvulkan1`)";
            if gl.is_empty() {
                format!("wgpu found no Vulkan, Metal or DX12 adapter; {install}")
            } else {
                let names: Vec<String> = gl.iter().map(|a| a.get_info().name).collect();
                format!(
                    "wgpu found no Vulkan, Metal or DX12 adapter, only GL ({}), which Plies does not use: \
                     wgpu's GL backend deadlocks under concurrent use (\"Could not lock adapter context\"); \
                     {install}",
                    names.join(", ")
                )
            }
        })
        .clone()
}

fn type_rank(t: DeviceType) -> u8 {
    match t {
        DeviceType::DiscreteGpu => 0,
        DeviceType::IntegratedGpu => 1,
        DeviceType::VirtualGpu => 2,
        DeviceType::Other => 3,
        DeviceType::Cpu => 4,
    }
}

/// The adapters of this machine, best first (enumerated once per process).
pub fn adapters() -> &'static [AdapterEntry] {
    static LIST: OnceLock<Vec<AdapterEntry>> = OnceLock::new();
    LIST.get_or_init(|| {
        let inst = instance();
        let found = pollster::block_on(inst.enumerate_adapters(NATIVE));
        let mut list: Vec<AdapterEntry> = found
            .into_iter()
            .map(|adapter| AdapterEntry { info: adapter.get_info(), adapter })
            .filter(|e| e.adapter.get_downlevel_capabilities().flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS))
            .collect();
        list.sort_by_key(|e| (type_rank(e.info.device_type), e.info.backend != wgpu::Backend::Vulkan));
        let mut seen = Vec::new();
        list.retain(|e| {
            let key = (e.info.name.clone(), e.info.vendor, e.info.device, e.info.device_pci_bus_id.clone());
            if seen.contains(&key) {
                return false;
            }
            seen.push(key);
            true
        });
        list
    })
}

/// The index of the best real (non-software) GPU, if there is one.
pub fn best_real_gpu() -> Option<usize> {
    adapters().iter().position(|e| !e.is_software())
}

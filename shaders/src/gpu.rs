//! `GpuBackend`: one wgpu device with its queue, the buffer pool, the pipeline cache and
//! the batch of recorded work.
//!
//! Execution is asynchronous: each op records a dispatch into the open batch (one command
//! encoder with one long compute pass) and returns at once. A batch is submitted when it
//! holds `MAX_BATCH` dispatches or its parameter arena is full, and when a value is read
//! back; only readback and `synchronize` wait. The parameter blocks of a batch's dispatches
//! go into one arena buffer, written once when the batch is submitted; each dispatch finds
//! its block through a dynamic offset, so bind groups are reused (see bindings.rs).

use crate::adapters::{adapters, AdapterEntry};
use crate::bindings::BindCache;
use crate::kernels::{Kernel, PipelineCache};
use crate::params::Params;
use crate::pool::{size_class, Pool, PoolStats};
use crate::status::{Slots, STATUS_BYTES};
use crate::tune::Autotuner;
use plies_core::{Device, Error, Result};
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Dispatches per submitted batch.
const MAX_BATCH: u32 = 128;
/// Bytes of parameter blocks per batch.
const ARENA_BYTES: u64 = 1 << 20;
/// The smallest window of the arena a parameter binding covers (larger blocks get the
/// next power of two, so a kernel's bind groups come in few sizes).
const MIN_WINDOW: u64 = 256;
/// Submitted batches allowed to run ahead of the host before it waits for the oldest.
const MAX_IN_FLIGHT: usize = 16;
/// Threads per workgroup of the elementwise kernels (WG in common.wgsl).
pub(crate) const WG: u32 = 256;
/// Element indices in WGSL are u32; leave room for grid-stride arithmetic.
const MAX_ELEMS: u64 = (u32::MAX as u64) - (1 << 26);

pub(crate) struct Batch {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    params: Vec<u8>,
    arena: wgpu::Buffer,
    dispatches: u32,
    in_flight: VecDeque<wgpu::SubmissionIndex>,
}

/// What went wrong on the device outside any call: a lost device or an error that wgpu
/// reported to no scope. Surfaced by the next op or readback.
#[derive(Default)]
struct Faults {
    lost: Option<String>,
    uncaptured: Option<String>,
}

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

pub struct GpuBackend {
    me: Weak<GpuBackend>,
    index: usize,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: wgpu::AdapterInfo,
    is_cpu: bool,
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
    timeout: Duration,
    pub(crate) tuner: Autotuner,
}

impl fmt::Debug for GpuBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GpuBackend(gpu:{}, {})", self.index, self.description)
    }
}

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
        let faults = Arc::new(Mutex::new(Faults::default()));
        {
            let faults = faults.clone();
            device.set_device_lost_callback(move |reason, msg| {
                let detail = if msg.is_empty() { String::new() } else { format!(": {msg}") };
                faults.lock().unwrap().lost.get_or_insert(format!("device lost ({reason:?}){detail}"));
            });
        }
        {
            let faults = faults.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let msg = match &e {
                    wgpu::Error::OutOfMemory { .. } => "out of GPU memory".to_string(),
                    other => other.to_string(),
                };
                faults.lock().unwrap().uncaptured.get_or_insert(msg);
            }));
        }
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
        let is_cpu = entry.is_cpu();
        Ok(Arc::new_cyclic(|me| GpuBackend {
            me: me.clone(),
            index,
            device,
            queue,
            info: entry.info.clone(),
            is_cpu,
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
            tuner: Autotuner::new(&entry.info, is_cpu),
        }))
    }

    pub(crate) fn arc(&self) -> Arc<GpuBackend> {
        self.me.upgrade().expect("the GPU backend is alive while its methods run")
    }

    pub fn index(&self) -> usize {
        self.index
    }

    pub fn dev(&self) -> Device {
        Device::Gpu(self.index)
    }

    /// A software adapter (lavapipe, WARP): right answers, no speed.
    pub fn is_software(&self) -> bool {
        self.is_cpu
    }

    /// The adapter: name, API, kind and driver.
    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.pool.lock().unwrap().stats()
    }

    /// Free every cached buffer.
    pub fn trim_pool(&self) {
        let doomed = {
            let mut pool = self.pool.lock().unwrap();
            pool.trim();
            pool.take_doomed()
        };
        self.bury(doomed);
    }

    /// Bound the bytes the pool keeps for reuse.
    pub fn set_pool_limit(&self, bytes: u64) {
        let doomed = {
            let mut pool = self.pool.lock().unwrap();
            pool.set_limit(bytes);
            pool.take_doomed()
        };
        self.bury(doomed);
    }

    /// Free buffers the pool let go, after dropping the bind groups that hold them. They
    /// are dropped, not destroyed: a buffer can come back while dispatches of the open
    /// batch still use it, and wgpu frees it once no recorded or running work does.
    fn bury(&self, doomed: Vec<wgpu::Buffer>) {
        if doomed.is_empty() {
            return;
        }
        self.binds.lock().unwrap().forget(&doomed);
        drop(doomed);
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

    /// The wgpu device (for interop, and for tests that need to break it).
    pub fn wgpu_device(&self) -> &wgpu::Device {
        &self.device
    }

    pub(crate) fn err(&self, msg: impl Into<String>) -> Error {
        Error::Backend { device: self.dev(), msg: msg.into() }
    }

    /// Fail fast on a lost device, and report an error wgpu raised outside any scope.
    pub(crate) fn check_faults(&self) -> Result<()> {
        let uncaptured = {
            let mut f = self.faults.lock().unwrap();
            if let Some(l) = &f.lost {
                return Err(self.err(format!("{} on {}", l, self.description)));
            }
            f.uncaptured.take()
        };
        let Some(e) = uncaptured else { return Ok(()) };
        // An error can be the first sign of a lost (or destroyed) device; wgpu announces the
        // loss while polling, so poll once and prefer that diagnosis.
        let _ = self.device.poll(wgpu::PollType::Poll);
        if let Some(l) = &self.faults.lock().unwrap().lost {
            return Err(self.err(format!("{} on {} (first error: {e})", l, self.description)));
        }
        Err(self.err(format!("{e} (on {})", self.description)))
    }

    // === Memory ===

    /// A buffer for `elems` 32-bit elements. `host_write` when the caller fills it with
    /// `queue.write_buffer` (see the pool's notes).
    pub(crate) fn alloc(&self, op: &'static str, elems: usize, host_write: bool) -> Result<(wgpu::Buffer, u64)> {
        self.check_faults()?;
        let bytes = elems as u64 * 4;
        if bytes > self.max_bytes {
            return Err(Error::TooLarge { op, bytes, limit: self.max_bytes, what: self.limit_name });
        }
        if elems as u64 > MAX_ELEMS {
            return Err(Error::TooLarge { op, bytes, limit: MAX_ELEMS * 4, what: "u32 element index range of WGSL" });
        }
        let class = size_class(bytes, self.max_bytes);
        let open = self.serial.load(Ordering::SeqCst);
        if let Some(b) = self.pool.lock().unwrap().take(class, host_write.then_some(open)) {
            return Ok((b, class));
        }
        let create = || {
            let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
            let b = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: class,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            match pollster::block_on(scope.pop()) {
                None => Ok(b),
                Some(e) => Err(e),
            }
        };
        let buffer = match create() {
            Ok(b) => b,
            Err(_) => {
                // Give the cache back to the driver and try once more.
                self.trim_pool();
                self.wait_idle()?;
                create().map_err(|e| {
                    let s = self.pool_stats();
                    self.err(format!(
                        "out of GPU memory in {op}: allocating {class} bytes with {} bytes live on {} ({e})",
                        s.live, self.description
                    ))
                })?
            }
        };
        self.pool.lock().unwrap().created(class);
        Ok((buffer, class))
    }

    pub(crate) fn release(&self, buffer: wgpu::Buffer, class: u64) {
        let open = self.serial.load(Ordering::SeqCst);
        let doomed = {
            let mut pool = self.pool.lock().unwrap();
            pool.give(buffer, class, open);
            pool.take_doomed()
        };
        self.bury(doomed);
    }

    // === Recording and submitting ===

    /// Workgroups for a grid-stride loop over `n` items.
    pub(crate) fn groups(&self, n: usize) -> u32 {
        (n.div_ceil(WG as usize).max(1) as u64).min(self.limits.max_compute_workgroups_per_dimension as u64) as u32
    }

    /// Record one dispatch of `kernel` with its parameter block and the buffers bound at
    /// the given binding numbers (binding 0 is the parameter block).
    pub(crate) fn run(
        &self,
        kernel: &Kernel,
        params: &Params,
        binds: &[(u32, &wgpu::Buffer)],
        groups: [u32; 3],
    ) -> Result<()> {
        self.record(kernel, params, binds, groups, false)
    }

    /// `run` for a kernel that checks indices: it also gets a status slot (binding 15).
    pub(crate) fn run_checked(
        &self,
        kernel: &Kernel,
        params: &Params,
        binds: &[(u32, &wgpu::Buffer)],
        groups: [u32; 3],
    ) -> Result<()> {
        self.record(kernel, params, binds, groups, true)
    }

    fn record(
        &self,
        kernel: &Kernel,
        params: &Params,
        binds: &[(u32, &wgpu::Buffer)],
        groups: [u32; 3],
        checked: bool,
    ) -> Result<()> {
        let began = Instant::now();
        // Submitting a full batch, or waiting for status slots, is not recording.
        let mut waited = Duration::ZERO;
        self.check_faults()?;
        if groups.contains(&0) {
            return Ok(());
        }
        let mut buffers: Vec<(u32, &wgpu::Buffer)> = binds.to_vec();
        if checked {
            buffers.push((15, &self.status));
        }
        buffers.sort_by_key(|&(n, _)| n);
        let bindings: Vec<u32> = std::iter::once(0).chain(buffers.iter().map(|&(n, _)| n)).collect();
        let compiled = self.pipelines.get(&self.device, self.dev(), kernel, &bindings)?;
        let mut params = params.clone();
        let mut b = self.batch.lock().unwrap();
        if checked {
            let slot = self.slots.lock().unwrap().acquire();
            let slot = match slot {
                Some(s) => s,
                None => {
                    // Every slot awaits a readback: read the status now to free them.
                    drop(b);
                    let t = Instant::now();
                    self.sync()?;
                    waited += t.elapsed();
                    b = self.batch.lock().unwrap();
                    self.slots
                        .lock()
                        .unwrap()
                        .acquire()
                        .ok_or_else(|| self.err("no free status slot after a readback"))?
                }
            };
            params = params.word(15, slot);
        }
        let bytes = params.bytes();
        let window = (bytes.len() as u64).next_power_of_two().max(MIN_WINDOW);
        if window > ARENA_BYTES {
            return Err(self.err(format!(
                "{}::{}: a parameter block of {} bytes does not fit the arena",
                kernel.family.name(),
                kernel.entry,
                bytes.len()
            )));
        }
        let start = (b.params.len() as u64).next_multiple_of(self.align);
        if start + window > ARENA_BYTES || b.dispatches >= MAX_BATCH {
            let t = Instant::now();
            self.flush_locked(&mut b)?;
            waited += t.elapsed();
        }
        let start = (b.params.len() as u64).next_multiple_of(self.align);
        b.params.resize(start as usize, 0);
        b.params.extend_from_slice(bytes);
        let bg = self.binds.lock().unwrap().get(&self.device, &compiled.layout, &b.arena, window, &buffers);
        let pass = b.pass(&self.device);
        pass.set_pipeline(&compiled.pipeline);
        pass.set_bind_group(0, &bg, &[start as u32]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        b.dispatches += 1;
        drop(b);
        self.dispatches.fetch_add(1, Ordering::Relaxed);
        let spent = began.elapsed().saturating_sub(waited);
        self.record_ns.fetch_add(spent.as_nanos() as u64, Ordering::Relaxed);
        // wgpu validates as it records: a mistake shows up here, naming the kernel.
        self.check_faults().map_err(|e| self.err(format!("{}::{}: {e}", kernel.family.name(), kernel.entry)))
    }

    pub(crate) fn flush_locked(&self, b: &mut Batch) -> Result<Option<wgpu::SubmissionIndex>> {
        b.pass = None;
        let Some(enc) = b.encoder.take() else { return Ok(None) };
        if !b.params.is_empty() {
            self.queue.write_buffer(&b.arena, 0, &b.params);
            b.params.clear();
        }
        let cmd = enc.finish();
        let t = Instant::now();
        let idx = self.queue.submit([cmd]);
        self.count_device_time(t);
        self.serial.fetch_add(1, Ordering::SeqCst);
        b.dispatches = 0;
        b.in_flight.push_back(idx.clone());
        while b.in_flight.len() > MAX_IN_FLIGHT {
            let oldest = b.in_flight.pop_front().unwrap();
            self.wait_for(Some(oldest))?;
        }
        Ok(Some(idx))
    }

    fn count_device_time(&self, since: Instant) {
        self.device_ns.fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Block until `index` (or everything submitted) has run.
    pub(crate) fn wait_for(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        let t = Instant::now();
        let polled = self.device.poll(wgpu::PollType::Wait { submission_index: index, timeout: Some(self.timeout) });
        self.count_device_time(t);
        match polled {
            Ok(_) => Ok(()),
            Err(e) => {
                self.check_faults()?;
                Err(self.err(format!("waiting for the GPU ({}): {e}", self.description)))
            }
        }
    }

    /// Submit and wait for all work.
    pub(crate) fn wait_idle(&self) -> Result<()> {
        let idx = {
            let mut b = self.batch.lock().unwrap();
            let idx = self.flush_locked(&mut b)?;
            b.in_flight.clear();
            idx
        };
        self.wait_for(idx)
    }

    /// Record copies into the open batch (outside any compute pass) and submit it; `f` also
    /// gets the status slots that the submission covers (see status.rs).
    pub(crate) fn copy_and_submit(
        &self,
        check_status: bool,
        f: impl FnOnce(&mut wgpu::CommandEncoder, &[usize]),
    ) -> Result<(Option<wgpu::SubmissionIndex>, Vec<usize>)> {
        let mut b = self.batch.lock().unwrap();
        b.pass = None;
        let checking = if check_status { self.slots.lock().unwrap().begin_check() } else { Vec::new() };
        let enc = b.encoder.get_or_insert_with(|| self.device.create_command_encoder(&Default::default()));
        f(enc, &checking);
        match self.flush_locked(&mut b) {
            Ok(idx) => Ok((idx, checking)),
            Err(e) => {
                self.slots.lock().unwrap().abandon(&checking);
                Err(e)
            }
        }
    }
}

impl Batch {
    fn pass(&mut self, device: &wgpu::Device) -> &mut wgpu::ComputePass<'static> {
        if self.pass.is_none() {
            let enc = self.encoder.get_or_insert_with(|| device.create_command_encoder(&Default::default()));
            self.pass = Some(enc.begin_compute_pass(&Default::default()).forget_lifetime());
        }
        self.pass.as_mut().unwrap()
    }
}

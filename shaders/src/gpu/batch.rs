//! Recording dispatches into the open batch (one command encoder with one long compute
//! pass), submitting batches, and waiting for them.
use super::{GpuBackend, ARENA_BYTES, MAX_BATCH, MAX_IN_FLIGHT, MIN_WINDOW, WG};
use crate::kernels::Kernel;
use crate::params::Params;
use plies_core::Result;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub(crate) struct Batch {
    pub(crate) encoder: Option<wgpu::CommandEncoder>,
    pub(crate) pass: Option<wgpu::ComputePass<'static>>,
    pub(crate) params: Vec<u8>,
    pub(crate) arena: wgpu::Buffer,
    pub(crate) dispatches: u32,
    pub(crate) in_flight: VecDeque<wgpu::SubmissionIndex>,
}

impl GpuBackend {
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
        let compiled = self.pipelines.get(&self.wgpu, self.plies_device(), kernel, &bindings)?;
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
        let bg = self.binds.lock().unwrap().get(&self.wgpu, &compiled.layout, &b.arena, window, &buffers);
        let pass = b.pass(&self.wgpu);
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

    /// Block until `index` (or everything submitted) has run.
    pub(crate) fn wait_for(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        let t = Instant::now();
        let polled = self.wgpu.poll(wgpu::PollType::Wait { submission_index: index, timeout: Some(self.timeout) });
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
        let enc = b.encoder.get_or_insert_with(|| self.wgpu.create_command_encoder(&Default::default()));
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

//! Host <-> device copies. Uploads go through the queue's staging memory (copied in
//! parallel for large tensors). Readback copies the view into a persistent staging buffer
//! (in chunks when larger), waits for that submission only, and copies out into a fresh
//! Vec with several threads: the page faults of a new allocation, not the GPU copy, are
//! what made a single-threaded readback slow. The kernels' status words travel in the same
//! staging buffer, so an index error recorded by any earlier op is reported here.

use crate::gpu::GpuBackend;
use crate::status::STATUS_BYTES;
use crate::storage::GpuStorage;
use plies_core::backend::{StorageBox, View};
use plies_core::cpu::{CpuData, CpuStorage};
use plies_core::{DType, Error, Result};
use std::mem::MaybeUninit;

/// Largest readback chunk; bigger views are read in several rounds.
const CHUNK: u64 = 64 << 20;
/// The status words sit at the start of the staging buffer, the data after them.
const DATA_AT: u64 = STATUS_BYTES;
/// Copies below this many bytes stay on one thread.
const PAR_BYTES: usize = 4 << 20;

/// Copy `src` into `dst` (same length) with up to 8 threads.
pub(crate) fn par_copy(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    debug_assert_eq!(dst.len(), src.len());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    if src.len() < PAR_BYTES || threads == 1 {
        copy_uninit(dst, src);
        return;
    }
    let per = src.len().div_ceil(threads).next_multiple_of(4096);
    std::thread::scope(|s| {
        for (d, c) in dst.chunks_mut(per).zip(src.chunks(per)) {
            s.spawn(move || copy_uninit(d, c));
        }
    });
}

fn copy_uninit(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    // SAFETY: MaybeUninit<u8> has the layout of u8 and the lengths match.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr() as *mut u8, src.len()) }
}

impl GpuBackend {
    pub(crate) fn upload_data(&self, data: &CpuStorage) -> Result<StorageBox> {
        let (bytes, dtype): (&[u8], DType) = match data.data() {
            CpuData::F32(v) => (bytemuck::cast_slice(v), DType::F32),
            CpuData::I32(v) => (bytemuck::cast_slice(v), DType::I32),
            CpuData::F64(_) => {
                return Err(Error::UnsupportedDType { op: "upload", dtype: DType::F64, device: self.plies_device() })
            }
        };
        let len = data.data().len();
        let (buffer, class) = self.alloc("upload", len, true)?;
        if let Some(size) = std::num::NonZeroU64::new(bytes.len() as u64) {
            let mut view = self
                .queue
                .write_buffer_with(&buffer, 0, size)
                .ok_or_else(|| self.err(format!("upload of {} bytes was refused by the queue", bytes.len())))?;
            let mut dst = view.slice(..);
            let ptr = dst.as_raw_ptr().as_ptr() as *mut MaybeUninit<u8>;
            // SAFETY: the staging view holds exactly `bytes.len()` writable bytes, and this
            // slice is only written (never read) before the view is dropped.
            let dst = unsafe { std::slice::from_raw_parts_mut(ptr, bytes.len()) };
            par_copy(dst, bytes);
        }
        Ok(Box::new(GpuStorage::new(self.arc(), buffer, class, len, dtype)))
    }

    fn staging(&self, guard: &mut Option<wgpu::Buffer>, bytes: u64) -> wgpu::Buffer {
        let need = DATA_AT + bytes.max(4);
        if let Some(b) = guard.as_ref() {
            if b.size() >= need {
                return b.clone();
            }
        }
        // need <= DATA_AT + CHUNK; small first requests still get a useful buffer.
        let size = need.max(DATA_AT + (1 << 20));
        let b = self.wgpu.create_buffer(&wgpu::BufferDescriptor {
            label: Some("plies readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        *guard = Some(b.clone());
        b
    }

    /// Copy `total` bytes at byte `start` of `buffer` to the host, handing each chunk to
    /// `sink` in order; the same submissions carry the status words of recorded slots.
    /// Returns the current thread's index error, if any surfaced.
    fn read_back(&self, src: Option<(&wgpu::Buffer, u64, u64)>, mut sink: impl FnMut(&[u8])) -> Result<()> {
        self.count_readback();
        let mut guard = self.staging.lock().unwrap();
        let (buffer, start, total) = src.unwrap_or((&self.status, 0, 0));
        let mut done = 0u64;
        loop {
            let n = (total - done).min(CHUNK);
            let staging = self.staging(&mut guard, n);
            let (idx, checking) = self.copy_and_submit(done == 0, |enc, checking| {
                if !checking.is_empty() {
                    enc.copy_buffer_to_buffer(&self.status, 0, &staging, 0, STATUS_BYTES);
                }
                if n > 0 {
                    enc.copy_buffer_to_buffer(buffer, start + done, &staging, DATA_AT, n);
                }
            })?;
            if checking.is_empty() && n == 0 {
                // Nothing to copy: just wait for the work submitted so far.
                self.wait_for(idx)?;
                break;
            }
            let mapped = self.map_wait(&staging, DATA_AT + n, idx);
            let view = match mapped {
                Ok(v) => v,
                Err(e) => {
                    self.slots.lock().unwrap().abandon(&checking);
                    // A map that is still pending would make the next copy into this buffer
                    // a validation error ("still mapped"): cancel it and start a new buffer.
                    staging.unmap();
                    *guard = None;
                    return Err(e);
                }
            };
            if !checking.is_empty() {
                let words: &[u32] = bytemuck::cast_slice(&view[..STATUS_BYTES as usize]);
                self.slots.lock().unwrap().finish_check(&checking, words, |s| {
                    self.queue.write_buffer(&self.status, s as u64 * 16, &[0u8; 16]);
                });
            }
            sink(&view[DATA_AT as usize..(DATA_AT + n) as usize]);
            drop(view);
            staging.unmap();
            done += n;
            if done >= total {
                break;
            }
        }
        drop(guard);
        self.check_faults()?;
        match self.slots.lock().unwrap().take_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Map the first `len` bytes of `staging` once submission `idx` has run.
    fn map_wait(
        &self,
        staging: &wgpu::Buffer,
        len: u64,
        idx: Option<wgpu::SubmissionIndex>,
    ) -> Result<wgpu::BufferView> {
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(0..len.next_multiple_of(4)).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait_for(idx)?;
        // The submission has run, but the map callback may not have: when another thread's
        // poll saw the submission finish first, that thread runs the callback, a moment after
        // our own poll returned. Keep polling until it arrives (or the device timeout passes).
        let t = std::time::Instant::now();
        let got = loop {
            match rx.recv_timeout(std::time::Duration::from_millis(1)) {
                Ok(r) => break Some(r),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break None,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if t.elapsed() > self.timeout => break None,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.wgpu.poll(wgpu::PollType::Poll);
                }
            }
        };
        match got {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(self.err(format!("mapping the readback buffer: {e}"))),
            None => {
                self.check_faults()?;
                return Err(self.err(format!(
                    "the readback buffer was not mapped within {:?} after the GPU finished",
                    self.timeout
                )));
            }
        }
        staging
            .slice(0..len.next_multiple_of(4))
            .get_mapped_range()
            .map_err(|e| self.err(format!("reading the readback buffer: {e}")))
    }

    /// Submit everything, wait, and report device faults and this thread's index errors.
    pub(crate) fn sync(&self) -> Result<()> {
        self.check_faults()?;
        self.read_back(None, |_| {})
    }

    pub(crate) fn download_view(&self, x: View) -> Result<CpuStorage> {
        Ok(CpuStorage::new(match x.dtype() {
            DType::F32 => CpuData::F32(self.download_vec(x)?),
            DType::I32 => CpuData::I32(self.download_vec(x)?),
            d => return Err(Error::UnsupportedDType { op: "download", dtype: d, device: self.plies_device() }),
        }))
    }

    fn download_vec<T: bytemuck::Pod>(&self, x: View) -> Result<Vec<T>> {
        let n = x.layout.elem_count();
        let dense = self.dense("download", x)?;
        let bytes = n * 4;
        let mut out: Vec<T> = Vec::with_capacity(n);
        let spare = out.spare_capacity_mut();
        // SAFETY: T is a 4-byte Pod type; the spare capacity holds n elements = `bytes` bytes.
        let dst = unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr() as *mut MaybeUninit<u8>, bytes) };
        let mut at = 0usize;
        self.read_back(Some((dense.buffer(), dense.offset() as u64 * 4, bytes as u64)), |chunk| {
            par_copy(&mut dst[at..at + chunk.len()], chunk);
            at += chunk.len();
        })?;
        // SAFETY: read_back delivered all `bytes` bytes, in order, into the spare capacity.
        unsafe { out.set_len(n) };
        Ok(out)
    }
}

//! Buffers: taken from the pool or created (with one retry after trimming the pool when
//! the device is out of memory), given back to the pool, and the limits they must respect.
use super::{GpuBackend, MAX_ELEMS};
use crate::pool::{size_class, PoolStats};
use plies_core::{Error, Result};
use std::sync::atomic::Ordering;

impl GpuBackend {
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
            let scope = self.wgpu.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
            let b = self.wgpu.create_buffer(&wgpu::BufferDescriptor {
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
}

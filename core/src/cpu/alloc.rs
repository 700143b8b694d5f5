//! Heap settings for a process that runs the CPU backend.
//!
//! A training step allocates and frees the same set of 1-30 MiB activation buffers over and
//! over. glibc's defaults hand such buffers back to the kernel when they are freed (mmap
//! below a threshold that moves with usage, and trimming the heap top past 128 KiB), so the
//! next step touches fresh pages again: on the W3 char GPT that was about 40,000 page faults
//! and a third of the step's time in the kernel. Fixed thresholds keep freed buffers of up to
//! 32 MiB in the heap for reuse; bigger ones are still mapped and unmapped (and ask for huge
//! pages, see `strided::output_vec`). The cost is that up to 256 MiB of freed memory stays
//! with the process.

/// Set glibc's mmap and trim thresholds once, unless the user set them through glibc's own
/// environment variables (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`).
pub(crate) fn tune_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        const TRIM_THRESHOLD: libc::c_int = 256 << 20;
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            // SAFETY: mallopt only changes allocator parameters; a rejected value returns 0
            // and leaves the defaults in place.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        }
        if std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none() {
            // SAFETY: as above.
            unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) };
        }
    }
}

//! The AVX2 + FMA microkernel: a 6 x 16 block of C in twelve ymm accumulators, fed by a
//! packed A panel (6 values per k step) and a packed B panel (16 values per k step).
//! Twelve accumulators, two B vectors and one broadcast fill 15 of the 16 registers, so
//! nothing spills; each k step is 12 FMAs against 2 vector loads and 6 broadcasts.

use std::arch::x86_64::*;

/// Rows of C per microkernel call.
pub(super) const MR: usize = 6;
/// Columns of C per microkernel call.
pub(super) const NR: usize = 16;

/// `C = A·B` (or `C += A·B` when `accumulate`) for one MR x NR block of C at `c` with
/// row stride `c_rs`, over `kc` steps of the packed panels `a` (MR per step) and `b` (NR
/// per step, 32-byte aligned).
///
/// # Safety
/// `a` holds `kc * MR` and `b` `kc * NR` readable floats, `b` is 32-byte aligned, and C
/// has MR rows of NR writable floats at `c + i * c_rs`. The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn kernel_6x16(kc: usize, a: *const f32, b: *const f32, c: *mut f32, c_rs: usize, accumulate: bool) {
    unsafe {
        let z = _mm256_setzero_ps();
        let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) = (z, z, z, z, z, z);
        let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) = (z, z, z, z, z, z);
        // C is touched only at the end; fetch its rows now so the misses overlap with
        // the k loop (its rows, a power of two apart, often share one L1 set).
        for i in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * c_rs) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * c_rs + NR - 1) as *const i8);
        }
        let (mut a, mut b) = (a, b);
        // One k step of row `r`: broadcast A's value and update both halves of the row.
        macro_rules! row {
            ($u:expr, $r:expr, $b0:expr, $b1:expr, $lo:ident, $hi:ident) => {{
                let x = _mm256_broadcast_ss(&*a.add($u * MR + $r));
                $lo = _mm256_fmadd_ps(x, $b0, $lo);
                $hi = _mm256_fmadd_ps(x, $b1, $hi);
            }};
        }
        macro_rules! step {
            ($u:expr) => {{
                let b0 = _mm256_load_ps(b.add($u * NR));
                let b1 = _mm256_load_ps(b.add($u * NR + 8));
                row!($u, 0, b0, b1, c00, c01);
                row!($u, 1, b0, b1, c10, c11);
                row!($u, 2, b0, b1, c20, c21);
                row!($u, 3, b0, b1, c30, c31);
                row!($u, 4, b0, b1, c40, c41);
                row!($u, 5, b0, b1, c50, c51);
            }};
        }
        for _ in 0..kc / 4 {
            step!(0);
            step!(1);
            step!(2);
            step!(3);
            a = a.add(4 * MR);
            b = b.add(4 * NR);
        }
        for _ in 0..kc % 4 {
            step!(0);
            a = a.add(MR);
            b = b.add(NR);
        }
        macro_rules! store {
            ($row:expr, $lo:expr, $hi:expr) => {{
                let p = c.add($row * c_rs);
                let (lo, hi) = if accumulate {
                    (_mm256_add_ps(_mm256_loadu_ps(p), $lo), _mm256_add_ps(_mm256_loadu_ps(p.add(8)), $hi))
                } else {
                    ($lo, $hi)
                };
                _mm256_storeu_ps(p, lo);
                _mm256_storeu_ps(p.add(8), hi);
            }};
        }
        store!(0, c00, c01);
        store!(1, c10, c11);
        store!(2, c20, c21);
        store!(3, c30, c31);
        store!(4, c40, c41);
        store!(5, c50, c51);
    }
}

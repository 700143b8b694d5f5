//! Batched matmul: f32 through our own AVX2 kernel (`super::sgemm`) where the CPU has
//! one, everything else through the `gemm` crate. Both take row and column strides, so
//! transposed and sliced operands are read in place without a copy.

use super::strided::output_vec;
use crate::{Element, Layout, Shape};
use gemm::Parallelism;
use rayon::prelude::*;

/// Element types gemm supports here.
pub(crate) trait GemmElement: Element {
    /// `C = A·B` for m x k `a` and k x n `b` (given by row and column strides) into `c`
    /// (row stride `c_rs`) on this thread with our own kernel; false, with nothing
    /// written, where there is none for this type and CPU.
    ///
    /// # Safety
    /// As `super::sgemm::sgemm`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn own_gemm(
        _m: usize,
        _n: usize,
        _k: usize,
        _a: (*const Self, usize, usize),
        _b: (*const Self, usize, usize),
        _c: *mut Self,
        _c_rs: usize,
    ) -> bool {
        false
    }
}

impl GemmElement for f32 {
    #[cfg(target_arch = "x86_64")]
    unsafe fn own_gemm(
        m: usize,
        n: usize,
        k: usize,
        a: (*const f32, usize, usize),
        b: (*const f32, usize, usize),
        c: *mut f32,
        c_rs: usize,
    ) -> bool {
        use super::sgemm::{sgemm, Operand};
        // Below 32 rows or columns most of a 6 x 16 tile is padding and packing costs as
        // much as the product; gemm's small-matrix paths measured up to 4x faster there.
        if m < 32 || n < 32 || !super::simd::has_avx2() {
            return false;
        }
        let op = |(ptr, rs, cs)| Operand { ptr, rs, cs };
        // SAFETY: forwarded from the caller; AVX2 and FMA were just checked.
        unsafe { sgemm(m, n, k, op(a), op(b), c, c_rs) };
        true
    }
}
impl GemmElement for f64 {}

/// Offsets of each batch matrix of `l` (whose last two dims are the matrix).
fn batch_offsets(l: &Layout) -> Vec<usize> {
    let r = l.rank();
    let batch = Layout::new(Shape::new(l.dims()[..r - 2].to_vec()), l.strides()[..r - 2].to_vec(), l.offset());
    batch.offsets().collect()
}

/// gemm needs a nonzero stride for size-1 dims too.
fn stride(l: &Layout, axis: usize) -> isize {
    l.strides()[axis].max(if l.dims()[axis] == 1 { 1 } else { 0 }) as isize
}

/// True when the batch dims of `la` continue its row dim with no gap (a contiguous
/// `[batch.., m, k]` input, say), so the batches stack into one `[batch * m, k]` matrix.
fn rows_stack(la: &Layout) -> bool {
    let r = la.rank();
    let (dims, strides) = (la.dims(), la.strides());
    if dims[r - 2] < 2 {
        return false;
    }
    let mut expected = strides[r - 2] * dims[r - 2];
    for i in (0..r - 2).rev() {
        if dims[i] > 1 && strides[i] != expected {
            return false;
        }
        expected *= dims[i];
    }
    true
}

/// A pointer into the output that rayon tasks may share: each writes its own block.
#[derive(Clone, Copy)]
struct OutPtr<T>(*mut T);
// SAFETY: tasks given an OutPtr write disjoint blocks of one live allocation.
unsafe impl<T> Send for OutPtr<T> {}
unsafe impl<T> Sync for OutPtr<T> {}

impl<T> OutPtr<T> {
    /// The pointer `count` elements on.
    ///
    /// # Safety
    /// As `pointer::add`.
    unsafe fn add(self, count: usize) -> Self {
        OutPtr(unsafe { self.0.add(count) })
    }
}

pub(crate) fn matmul<T: GemmElement + Default>(a: &[T], la: &Layout, b: &[T], lb: &Layout) -> Vec<T> {
    let r = la.rank();
    let (m, k, n) = (la.dims()[r - 2], la.dims()[r - 1], lb.dims()[r - 1]);
    let batches = batch_offsets(la);
    let batches_b = batch_offsets(lb);
    let len = batches.len() * m * n;
    if m * n == 0 || k == 0 {
        return vec![T::default(); len];
    }
    // Both kernels overwrite the output without reading it, so no zero fill.
    let mut out: Vec<T> = output_vec(len);
    let (a_rs, a_cs) = (stride(la, r - 2), stride(la, r - 1));
    let (b_rs, b_cs) = (stride(lb, r - 2), stride(lb, r - 1));
    // The `rows` x `cols` block of the output at `dst` (row stride n) from lhs offset
    // `oa` and rhs offset `ob`, on this thread.
    let run = |dst: OutPtr<T>, rows: usize, cols: usize, oa: usize, ob: usize| {
        // SAFETY: the layouts were checked against the storages by the caller; offsets
        // plus strides stay within them, and dst has `rows` rows of `cols` elements at
        // row stride n, which both kernels write without reading (gemm: read_dst = false).
        unsafe {
            let (pa, pb) = (a.as_ptr().add(oa), b.as_ptr().add(ob));
            let own = (pa, a_rs as usize, a_cs as usize);
            if T::own_gemm(rows, cols, k, own, (pb, b_rs as usize, b_cs as usize), dst.0, n) {
                return;
            }
            gemm::gemm(
                rows,
                cols,
                k,
                dst.0,
                1,
                n as isize,
                false,
                pa,
                a_cs,
                a_rs,
                pb,
                b_cs,
                b_rs,
                T::default(),
                one::<T>(),
                false,
                false,
                false,
                Parallelism::None,
            )
        }
    };
    // A large product: split its rows into one block per thread (its columns when it
    // has too few rows), each an independent single-threaded product. Each thread packs
    // its share of the operands itself, but no thread waits for another between k
    // blocks, as gemm's own splitting does: on the shared 2-core VM that measured 4-18%
    // faster (n = 256..2048) than gemm's Parallelism::Rayon.
    let big = |dst: OutPtr<T>, rows: usize, oa: usize, ob: usize| {
        let threads = rayon::current_num_threads();
        let flops = rows * n * k;
        if threads < 2 || flops < 96 * 96 * 96 {
            return run(dst, rows, n, oa, ob);
        }
        if rows >= 128 {
            let parts = threads.min(rows / 64);
            let per = rows.div_ceil(parts).next_multiple_of(16);
            (0..rows.div_ceil(per)).into_par_iter().for_each(|i| {
                let r0 = i * per;
                // SAFETY: row block i of the output, inside it.
                let d = unsafe { dst.add(r0 * n) };
                run(d, per.min(rows - r0), n, oa + r0 * a_rs as usize, ob)
            });
        } else {
            let parts = threads.min(n / 64).max(1);
            let per = n.div_ceil(parts).next_multiple_of(16);
            (0..n.div_ceil(per)).into_par_iter().for_each(|i| {
                let c0 = i * per;
                // SAFETY: column block i of the output, inside it.
                let d = unsafe { dst.add(c0) };
                run(d, rows, per.min(n - c0), oa, ob + c0 * b_cs as usize)
            });
        }
    };
    let base = OutPtr(out.spare_capacity_mut().as_mut_ptr() as *mut T);
    // SAFETY (offsets into the output below): batch i's block starts at i * m * n < len.
    let at = |i: usize| unsafe { base.add(i * m * n) };
    let flops = m * n * k;
    let shared_rhs = batches_b.iter().all(|&o| o == batches_b[0]);
    if batches.len() > 1 && shared_rhs && rows_stack(la) {
        // One weight matrix for every batch (a linear layer on [batch, seq, d]): a single
        // product of all the batches' rows.
        big(base, batches.len() * m, batches[0], batches_b[0]);
    } else if batches.len() > 1 && flops < 256 * 256 * 256 && batches.len() * flops >= 64 * 64 * 64 {
        // Many small or medium matrices (attention heads): one matrix per task beats
        // splitting each small product across threads.
        (0..batches.len()).into_par_iter().for_each(|i| run(at(i), m, n, batches[i], batches_b[i]));
    } else {
        // One large product per batch, or too little work in all to be worth a trip
        // through the thread pool (`big` keeps small products on this thread).
        for i in 0..batches.len() {
            big(at(i), m, batches[i], batches_b[i]);
        }
    }
    // SAFETY: every block of the output was written by a kernel.
    unsafe { out.set_len(len) };
    out
}

fn one<T: Element>() -> T {
    T::from_f64(1.0)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn matmul_reads_transposed_views() {
        // a = [[1,2,3],[4,5,6]] stored transposed as [3,2]
        let at = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0];
        let la = Layout::contiguous([3, 2]).transpose(0, 1).unwrap();
        let b = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0];
        let lb = Layout::contiguous([3, 2]);
        assert_eq!(matmul(&at, &la, &b, &lb), vec![4.0, 5.0, 10.0, 11.0]);
    }

    /// The product of `a` and `b` (same batch shape) by the definition.
    pub(in crate::cpu) fn naive(a: &[f64], la: &Layout, b: &[f64], lb: &Layout) -> Vec<f64> {
        let r = la.rank();
        let (m, k, n) = (la.dims()[r - 2], la.dims()[r - 1], lb.dims()[r - 1]);
        let (oa, ob) = (batch_offsets(la), batch_offsets(lb));
        let (sa, sb) = (la.strides(), lb.strides());
        let mut out = Vec::new();
        for (&oa, &ob) in oa.iter().zip(&ob) {
            for i in 0..m {
                for j in 0..n {
                    out.push(
                        (0..k)
                            .map(|t| a[oa + i * sa[r - 2] + t * sa[r - 1]] * b[ob + t * sb[r - 2] + j * sb[r - 1]])
                            .sum(),
                    );
                }
            }
        }
        out
    }

    #[test]
    fn batched_layouts_match_the_definition() {
        let a: Vec<f64> = (0..2 * 3 * 5 * 4).map(|v| (v % 7) as f64 - 3.0).collect();
        let b: Vec<f64> = (0..3 * 4 * 6).map(|v| (v % 5) as f64 - 2.0).collect();
        let lw = Layout::contiguous([4, 6]);
        let cases = [
            // contiguous lhs, shared rhs: batches stack into one product
            (Layout::contiguous([2, 3, 5, 4]), lw.broadcast_to(&Shape::from([2, 3, 4, 6])).unwrap()),
            // permuted batch dims: no stacking
            (
                Layout::contiguous([3, 2, 5, 4]).transpose(0, 1).unwrap(),
                lw.broadcast_to(&Shape::from([2, 3, 4, 6])).unwrap(),
            ),
            // transposed matrices of a shared rhs
            (
                Layout::contiguous([6, 5, 4]).narrow(0, 1, 4).unwrap(),
                Layout::contiguous([6, 4]).transpose(0, 1).unwrap().broadcast_to(&Shape::from([4, 4, 6])).unwrap(),
            ),
            // one rhs per batch
            (Layout::contiguous([3, 5, 4]), Layout::contiguous([3, 4, 6])),
            // lhs batch broadcast
            (Layout::contiguous([5, 4]).broadcast_to(&Shape::from([3, 5, 4])).unwrap(), Layout::contiguous([3, 4, 6])),
        ];
        for (la, lb) in cases {
            assert_eq!(matmul(&a, &la, &b, &lb), naive(&a, &la, &b, &lb), "{la:?} x {lb:?}");
        }
    }

    #[test]
    fn large_products_split_by_rows_match_the_definition() {
        // Big enough to take the row-split path, with row counts that do not divide evenly,
        // a transposed lhs and stacked batches; on a 3-thread pool to force several parts.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let a: Vec<f64> = (0..2 * 301 * 203).map(|v| ((v * 37) % 19) as f64 - 9.0).collect();
        let b: Vec<f64> = (0..203 * 157).map(|v| ((v * 11) % 13) as f64 - 6.0).collect();
        let lb = Layout::contiguous([203, 157]);
        let cases = [
            (Layout::contiguous([301, 203]), lb.clone()),
            (Layout::contiguous([203, 301]).transpose(0, 1).unwrap(), lb.clone()),
            (Layout::contiguous([2, 301, 203]), lb.broadcast_to(&Shape::from([2, 203, 157])).unwrap()),
        ];
        for (la, lb) in cases {
            let got = pool.install(|| matmul(&a, &la, &b, &lb));
            assert_eq!(got, naive(&a, &la, &b, &lb), "{la:?}");
        }
    }

    #[test]
    fn f32_products_split_by_rows_or_columns_match_the_definition() {
        // The f32 path (our own kernel on AVX2 CPUs) through both ways `big` splits a
        // product: by rows (301 rows) and, with too few rows, by columns (100 rows). Small
        // integers keep every sum exact in f32, so the results must be equal.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let a: Vec<f64> = (0..301 * 203).map(|v| ((v * 37) % 19) as f64 - 9.0).collect();
        let b: Vec<f64> = (0..203 * 301).map(|v| ((v * 11) % 13) as f64 - 6.0).collect();
        let (a32, b32): (Vec<f32>, Vec<f32>) =
            (a.iter().map(|&v| v as f32).collect(), b.iter().map(|&v| v as f32).collect());
        let cases = [
            (Layout::contiguous([301, 203]), Layout::contiguous([203, 301])),
            (Layout::contiguous([100, 203]), Layout::contiguous([203, 301])),
            (
                Layout::contiguous([203, 100]).transpose(0, 1).unwrap(),
                Layout::contiguous([301, 203]).transpose(0, 1).unwrap(),
            ),
        ];
        for (la, lb) in cases {
            let got = pool.install(|| matmul(&a32, &la, &b32, &lb));
            let want: Vec<f32> = naive(&a, &la, &b, &lb).iter().map(|&v| v as f32).collect();
            assert_eq!(got, want, "{la:?} x {lb:?}");
        }
    }

    #[test]
    fn batched_with_broadcast_rhs() {
        let a: Vec<f64> = (0..8).map(|v| v as f64).collect();
        let la = Layout::contiguous([2, 2, 2]);
        let b = [1.0f64, 0.0, 0.0, 2.0];
        let lb = Layout::contiguous([2, 2]).broadcast_to(&Shape::from([2, 2, 2])).unwrap();
        assert_eq!(matmul(&a, &la, &b, &lb), vec![0., 2., 2., 6., 4., 10., 6., 14.]);
    }
}

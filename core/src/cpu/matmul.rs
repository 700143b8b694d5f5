//! Batched matmul through the `gemm` crate, which takes row and column strides, so
//! transposed and sliced operands are read in place without a copy.

use super::strided::output_vec;
use crate::{Element, Layout, Shape};
use gemm::Parallelism;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Element types gemm supports here.
pub(crate) trait GemmElement: Element {}
impl GemmElement for f32 {}
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

pub(crate) fn matmul<T: GemmElement + Default>(a: &[T], la: &Layout, b: &[T], lb: &Layout) -> Vec<T> {
    let r = la.rank();
    let (m, k, n) = (la.dims()[r - 2], la.dims()[r - 1], lb.dims()[r - 1]);
    let batches = batch_offsets(la);
    let batches_b = batch_offsets(lb);
    let len = batches.len() * m * n;
    if m * n == 0 || k == 0 {
        return vec![T::default(); len];
    }
    // gemm overwrites the output (it is called without reading dst), so no zero fill.
    let mut out: Vec<T> = output_vec(len);
    let (a_rs, a_cs) = (stride(la, r - 2), stride(la, r - 1));
    let (b_rs, b_cs) = (stride(lb, r - 2), stride(lb, r - 1));
    // `rows` rows of the output from lhs offset `oa` and rhs offset `ob`.
    let run = |dst: &mut [MaybeUninit<T>], rows: usize, oa: usize, ob: usize, par: Parallelism| {
        // SAFETY: the layouts were checked against the storages by the caller; offsets
        // plus strides stay within them, and dst holds exactly rows*n elements, which gemm
        // writes without reading (read_dst = false).
        unsafe {
            gemm::gemm(
                rows,
                n,
                k,
                dst.as_mut_ptr() as *mut T,
                1,
                n as isize,
                false,
                a.as_ptr().add(oa),
                a_cs,
                a_rs,
                b.as_ptr().add(ob),
                b_cs,
                b_rs,
                T::default(),
                one::<T>(),
                false,
                false,
                false,
                par,
            )
        }
    };
    // A large product: split its rows into one block per thread, each an independent
    // single-threaded gemm. Each thread packs the rhs once more (k * n copies against
    // rows * n * k / threads multiply-adds, cheap above 64 rows a thread), but no thread
    // waits for another between k blocks, as gemm's own splitting does: on the shared
    // 2-core VM that measured 4-18% faster (n = 256..2048) than Parallelism::Rayon.
    let big = |dst: &mut [MaybeUninit<T>], rows: usize, oa: usize, ob: usize| {
        let flops = rows * n * k;
        let parts = rayon::current_num_threads().min(rows / 64);
        if parts >= 2 && flops >= 128 * 128 * 128 {
            let per = rows.div_ceil(parts).next_multiple_of(16);
            dst.par_chunks_mut(per * n)
                .enumerate()
                .for_each(|(i, d)| run(d, d.len() / n, oa + i * per * a_rs as usize, ob, Parallelism::None));
        } else {
            let par = if flops >= 48 * 48 * 48 { Parallelism::Rayon(0) } else { Parallelism::None };
            run(dst, rows, oa, ob, par);
        }
    };
    let spare = &mut out.spare_capacity_mut()[..len];
    let flops = m * n * k;
    let shared_rhs = batches_b.iter().all(|&o| o == batches_b[0]);
    if batches.len() > 1 && shared_rhs && rows_stack(la) {
        // One weight matrix for every batch (a linear layer on [batch, seq, d]): a single
        // product of all the batches' rows.
        big(spare, batches.len() * m, batches[0], batches_b[0]);
    } else if batches.len() > 1 && flops < 256 * 256 * 256 && batches.len() * flops >= 64 * 64 * 64 {
        // Many small or medium matrices (attention heads): one matrix per task beats
        // splitting each small product across threads.
        spare
            .par_chunks_mut(m * n)
            .zip(batches.par_iter().zip(batches_b.par_iter()))
            .for_each(|(dst, (&oa, &ob))| run(dst, m, oa, ob, Parallelism::None));
    } else {
        // One large product per batch, or too little work in all to be worth a trip
        // through the thread pool (`big` keeps small products on this thread).
        for (dst, (&oa, &ob)) in spare.chunks_mut(m * n).zip(batches.iter().zip(&batches_b)) {
            big(dst, m, oa, ob);
        }
    }
    // SAFETY: every block of the output was written by gemm.
    unsafe { out.set_len(len) };
    out
}

fn one<T: Element>() -> T {
    T::from_f64(1.0)
}

#[cfg(test)]
mod tests {
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
    fn naive(a: &[f64], la: &Layout, b: &[f64], lb: &Layout) -> Vec<f64> {
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
    fn batched_with_broadcast_rhs() {
        let a: Vec<f64> = (0..8).map(|v| v as f64).collect();
        let la = Layout::contiguous([2, 2, 2]);
        let b = [1.0f64, 0.0, 0.0, 2.0];
        let lb = Layout::contiguous([2, 2]).broadcast_to(&Shape::from([2, 2, 2])).unwrap();
        assert_eq!(matmul(&a, &la, &b, &lb), vec![0., 2., 2., 6., 4., 10., 6., 14.]);
    }
}

//! The loop engine of the CPU kernels: walk one to three strided views of the same shape
//! in row-major order, in parallel chunks, calling a kernel on runs ("segments") where
//! every operand has a single inner stride. Kernels specialise on inner strides of 0 and
//! 1 so the common cases (dense, broadcast scalar, broadcast row) vectorise.

use crate::layout::Coalesced;
use crate::Layout;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Work below this many elements runs on the calling thread.
pub(crate) const PAR_GRAIN: usize = 1 << 15;

/// An empty vector with room for `n` elements, for a kernel's output. Buffers of several
/// MiB ask Linux for transparent huge pages: a fresh output's first-touch page faults,
/// not memory bandwidth, bound large elementwise ops on the 2-core VM (touching a new
/// 64 MiB buffer took 140 ms with 4 KiB pages and 26 ms with 2 MiB pages).
pub(crate) fn output_vec<U>(n: usize) -> Vec<U> {
    let out: Vec<U> = Vec::with_capacity(n);
    #[cfg(target_os = "linux")]
    advise_huge_pages(out.as_ptr() as usize, n * std::mem::size_of::<U>());
    out
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(start: usize, bytes: usize) {
    const HUGE: usize = 2 << 20;
    if bytes < 4 * HUGE {
        return;
    }
    // Only whole 2 MiB pages inside the buffer; the edges keep small pages.
    let (lo, hi) = (start.next_multiple_of(HUGE), (start + bytes) / HUGE * HUGE);
    if hi > lo {
        // SAFETY: the range lies inside an allocation we own; MADV_HUGEPAGE is a hint
        // that never changes its contents. Failure (THP disabled) changes nothing.
        unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE) };
    }
}

/// A vector of `n` uninitialised elements, filled by `fill(chunk_start, chunk)` over
/// parallel chunks. `fill` must write every element of its chunk.
pub(crate) fn build_vec<U: Send + Copy>(n: usize, fill: impl Fn(usize, &mut [MaybeUninit<U>]) + Sync) -> Vec<U> {
    build_vec_grain(n, PAR_GRAIN, fill)
}

/// `build_vec` with chunks of `grain` elements, for outputs whose elements each cost
/// much more than one input element (one per row of a reduction, say).
pub(crate) fn build_vec_grain<U: Send + Copy>(
    n: usize,
    grain: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<U>]) + Sync,
) -> Vec<U> {
    // Big outputs take whole multiples of `grain` per task (so row blocks stay whole),
    // about eight tasks per thread: enough to balance, few enough that scheduling 512
    // tasks of 32K elements does not cost 5-10% of a 16M-element op.
    let grain = grain.max(1);
    let grain = grain * (n / (rayon::current_num_threads() * 8) / grain).max(1);
    let mut out: Vec<U> = output_vec(n);
    let spare = &mut out.spare_capacity_mut()[..n];
    if n <= grain {
        fill(0, spare);
    } else {
        spare.par_chunks_mut(grain).enumerate().for_each(|(i, c)| fill(i * grain, c));
    }
    // SAFETY: every chunk of the first n elements was written by `fill`.
    unsafe { out.set_len(n) };
    out
}

/// Call `f(out_pos, len, starts)` for each segment of output positions `s..e`, where
/// `starts[k]` is operand k's storage offset of the segment's first element.
pub(crate) fn for_each_segment(c: &Coalesced, s: usize, e: usize, mut f: impl FnMut(usize, usize, &[usize])) {
    if s >= e {
        return;
    }
    let row = c.row_len();
    let first_row = s / row;
    let last_row = (e - 1) / row;
    let nops = c.offsets.len();
    let mut iters: Vec<_> = (0..nops).map(|k| c.row_starts(k, first_row, last_row - first_row + 1)).collect();
    let inner: Vec<usize> = (0..nops).map(|k| c.inner_stride(k)).collect();
    let mut starts = vec![0; nops];
    let mut pos = s;
    let mut col = s % row;
    while pos < e {
        let len = (row - col).min(e - pos);
        for k in 0..nops {
            starts[k] = iters[k].next().unwrap() + col * inner[k];
        }
        f(pos, len, &starts);
        pos += len;
        col = 0;
    }
}

/// `out[i] = f(x[i])` over a strided view.
pub(crate) fn map1<T, U, F>(x: &[T], l: &Layout, f: F) -> Vec<U>
where
    T: Copy + Sync,
    U: Copy + Send,
    F: Fn(T) -> U + Sync,
{
    let n = l.elem_count();
    if l.is_contiguous() {
        let x = &x[l.offset()..l.offset() + n];
        return build_vec(n, |s, out| {
            let len = out.len();
            for (o, &v) in out.iter_mut().zip(&x[s..s + len]) {
                o.write(f(v));
            }
        });
    }
    let c = Coalesced::new(&[l]);
    let sx = c.inner_stride(0);
    build_vec(n, |s, out| {
        for_each_segment(&c, s, s + out.len(), |pos, len, st| {
            let o = &mut out[pos - s..pos - s + len];
            if sx == 0 {
                let v = f(x[st[0]]);
                o.iter_mut().for_each(|o| {
                    o.write(v);
                });
            } else {
                for (i, o) in o.iter_mut().enumerate() {
                    o.write(f(x[st[0] + i * sx]));
                }
            }
        })
    })
}

/// A run of `len` elements of `x` from `start` with step `stride`: borrowed when the
/// step is 1, else gathered into `buf`.
fn run_of<'a, T: Copy>(x: &'a [T], start: usize, stride: usize, len: usize, buf: &'a mut Vec<T>) -> &'a [T] {
    if stride == 1 {
        return &x[start..start + len];
    }
    buf.clear();
    buf.extend((0..len).map(|i| x[start + i * stride]));
    buf
}

/// Like `map1`, but `run(x, out)` maps whole runs of equal length, so a kernel can work
/// on many elements at once. Strided runs are gathered into a buffer first.
pub(crate) fn map1_runs<T, U>(x: &[T], l: &Layout, run: impl Fn(&[T], &mut [MaybeUninit<U>]) + Sync) -> Vec<U>
where
    T: Copy + Sync,
    U: Copy + Send,
{
    let n = l.elem_count();
    if l.is_contiguous() {
        let x = &x[l.offset()..l.offset() + n];
        return build_vec(n, |s, out| run(&x[s..s + out.len()], out));
    }
    let c = Coalesced::new(&[l]);
    let sx = c.inner_stride(0);
    build_vec(n, |s, out| {
        let mut buf = Vec::new();
        for_each_segment(&c, s, s + out.len(), |pos, len, st| {
            let o = &mut out[pos - s..pos - s + len];
            if sx == 0 {
                // A broadcast run: one value, repeated.
                run(&x[st[0]..st[0] + 1], &mut o[..1]);
                // SAFETY: `run` wrote o[0].
                let v = unsafe { o[0].assume_init() };
                o[1..].iter_mut().for_each(|o| {
                    o.write(v);
                });
            } else {
                run(run_of(x, st[0], sx, len, &mut buf), o);
            }
        })
    })
}

/// Like `map2`, with a kernel over runs: `run(a, b, out)`, all of one length.
pub(crate) fn map2_runs<A, B, U>(
    a: &[A],
    la: &Layout,
    b: &[B],
    lb: &Layout,
    run: impl Fn(&[A], &[B], &mut [MaybeUninit<U>]) + Sync,
) -> Vec<U>
where
    A: Copy + Sync,
    B: Copy + Sync,
    U: Copy + Send,
{
    let n = la.elem_count();
    if la.is_contiguous() && lb.is_contiguous() {
        let (a, b) = (&a[la.offset()..la.offset() + n], &b[lb.offset()..lb.offset() + n]);
        return build_vec(n, |s, out| run(&a[s..s + out.len()], &b[s..s + out.len()], out));
    }
    let c = Coalesced::new(&[la, lb]);
    let (sa, sb) = (c.inner_stride(0), c.inner_stride(1));
    build_vec(n, |s, out| {
        let (mut ba, mut bb) = (Vec::new(), Vec::new());
        for_each_segment(&c, s, s + out.len(), |pos, len, st| {
            let o = &mut out[pos - s..pos - s + len];
            run(run_of(a, st[0], sa, len, &mut ba), run_of(b, st[1], sb, len, &mut bb), o);
        })
    })
}

/// `out[i] = f(a[i], b[i])` over two strided views of the same shape.
pub(crate) fn map2<A, B, U, F>(a: &[A], la: &Layout, b: &[B], lb: &Layout, f: F) -> Vec<U>
where
    A: Copy + Sync,
    B: Copy + Sync,
    U: Copy + Send,
    F: Fn(A, B) -> U + Sync,
{
    let n = la.elem_count();
    let c = Coalesced::new(&[la, lb]);
    let (sa, sb) = (c.inner_stride(0), c.inner_stride(1));
    build_vec(n, |s, out| {
        for_each_segment(&c, s, s + out.len(), |pos, len, st| {
            let o = &mut out[pos - s..pos - s + len];
            match (sa, sb) {
                (1, 1) => {
                    let (a, b) = (&a[st[0]..st[0] + len], &b[st[1]..st[1] + len]);
                    for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                        o.write(f(x, y));
                    }
                }
                (1, 0) => {
                    let (a, y) = (&a[st[0]..st[0] + len], b[st[1]]);
                    for (o, &x) in o.iter_mut().zip(a) {
                        o.write(f(x, y));
                    }
                }
                (0, 1) => {
                    let (x, b) = (a[st[0]], &b[st[1]..st[1] + len]);
                    for (o, &y) in o.iter_mut().zip(b) {
                        o.write(f(x, y));
                    }
                }
                _ => {
                    for (i, o) in o.iter_mut().enumerate() {
                        o.write(f(a[st[0] + i * sa], b[st[1] + i * sb]));
                    }
                }
            }
        })
    })
}

/// `out[i] = f(a[i], b[i], c[i])` over three strided views of the same shape.
pub(crate) fn map3<A, B, C, U, F>(a: &[A], la: &Layout, b: &[B], lb: &Layout, c3: &[C], lc: &Layout, f: F) -> Vec<U>
where
    A: Copy + Sync,
    B: Copy + Sync,
    C: Copy + Sync,
    U: Copy + Send,
    F: Fn(A, B, C) -> U + Sync,
{
    let n = la.elem_count();
    let c = Coalesced::new(&[la, lb, lc]);
    let (sa, sb, sc) = (c.inner_stride(0), c.inner_stride(1), c.inner_stride(2));
    build_vec(n, |s, out| {
        for_each_segment(&c, s, s + out.len(), |pos, len, st| {
            let o = &mut out[pos - s..pos - s + len];
            for (i, o) in o.iter_mut().enumerate() {
                o.write(f(a[st[0] + i * sa], b[st[1] + i * sb], c3[st[2] + i * sc]));
            }
        })
    })
}

/// A contiguous copy of a view (borrowed when it already is one).
pub(crate) fn contiguous<'a, T: Copy + Send + Sync>(x: &'a [T], l: &Layout) -> std::borrow::Cow<'a, [T]> {
    if l.is_contiguous() {
        std::borrow::Cow::Borrowed(&x[l.offset()..l.offset() + l.elem_count()])
    } else {
        std::borrow::Cow::Owned(map1(x, l, |v| v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shape;

    #[test]
    fn map2_broadcasts_and_views() {
        let a: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let la = Layout::contiguous([2, 3]).transpose(0, 1).unwrap(); // [3, 2]
        let b = [10.0f32, 20.0];
        let lb = Layout::contiguous([2]).broadcast_to(&Shape::from([3, 2])).unwrap();
        let out = map2(&a, &la, &b, &lb, |x, y| x + y);
        assert_eq!(out, vec![10.0, 23.0, 11.0, 24.0, 12.0, 25.0]);
    }

    #[test]
    fn runs_variants_match_the_elementwise_ones() {
        let n = PAR_GRAIN + 77;
        let x: Vec<f32> = (0..3 * n).map(|v| v as f32 * 0.5).collect();
        let double = |x: &[f32], o: &mut [MaybeUninit<f32>]| {
            for (o, &v) in o.iter_mut().zip(x) {
                o.write(2.0 * v);
            }
        };
        let layouts = [
            Layout::contiguous([3, n]),
            Layout::contiguous([3, n]).transpose(0, 1).unwrap(),
            Layout::contiguous([n, 3]).narrow(1, 1, 1).unwrap(),
            Layout::contiguous([1, n]).broadcast_to(&Shape::from([3, n])).unwrap(),
            Layout::contiguous([3, 1]).broadcast_to(&Shape::from([3, n])).unwrap(),
        ];
        for l in &layouts {
            assert_eq!(map1_runs(&x, l, double), map1(&x, l, |v| 2.0 * v), "{l:?}");
        }
        let add = |a: &[f32], b: &[f32], o: &mut [MaybeUninit<f32>]| {
            for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                o.write(a + 10.0 * b);
            }
        };
        for la in &layouts {
            for lb in &layouts {
                if la.dims() == lb.dims() {
                    assert_eq!(map2_runs(&x, la, &x, lb, add), map2(&x, la, &x, lb, |a, b| a + 10.0 * b));
                }
            }
        }
    }

    #[test]
    fn map1_parallel_chunks_cover_everything() {
        let n = PAR_GRAIN * 3 + 17;
        let x: Vec<f64> = (0..2 * n).map(|v| v as f64).collect();
        let l = Layout::contiguous([n, 2]).narrow(1, 1, 1).unwrap();
        let out = map1(&x, &l, |v| v);
        assert!(out.iter().enumerate().all(|(i, &v)| v == (2 * i + 1) as f64));
    }
}

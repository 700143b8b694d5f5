//! Reductions. The input is made contiguous, then each run of adjacent reduced axes is
//! reduced as an `[outer, red, inner]` block, so every pass reads memory in order: rows
//! (`inner == 1`) reduce along contiguous memory, columns accumulate whole rows.

use super::simd::{max_nan, min_nan, VecMath};
use super::strided::{build_vec_grain, contiguous, PAR_GRAIN};
use crate::{Element, FloatElement, Layout, ReduceOp};
use rayon::prelude::*;
use std::borrow::Cow;

/// Split `axes` (sorted) into runs of consecutive axes.
fn runs(axes: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &a in axes {
        match out.last_mut() {
            Some((_, end)) if *end == a => *end += 1,
            _ => out.push((a, a + 1)),
        }
    }
    out
}

/// Sum, max or min of a float view over `axes`; output keeps reduced dims as 1.
pub(crate) fn reduce_float<T: VecMath>(op: ReduceOp, x: &[T], l: &Layout, axes: &[usize]) -> Vec<T> {
    let mut dims = l.dims().to_vec();
    // A contiguous input is read in place; each pass makes a smaller owned array.
    let mut cur = contiguous(x, l);
    // Reduce the innermost run first: it shrinks the data the most cheaply.
    for (a, b) in runs(axes).into_iter().rev() {
        let outer: usize = dims[..a].iter().product();
        let red: usize = dims[a..b].iter().product();
        let inner: usize = dims[b..].iter().product();
        cur = Cow::Owned(match op {
            ReduceOp::Sum => reduce_block(&cur, outer, red, inner, T::zero(), |a, v| a + v, T::sum_row),
            ReduceOp::Max => reduce_block(&cur, outer, red, inner, T::neg_infinity(), max_nan, T::max_row),
            ReduceOp::Min => reduce_block(&cur, outer, red, inner, T::infinity(), min_nan, T::min_row),
            _ => unreachable!("arg reductions go through reduce_arg"),
        });
        for d in &mut dims[a..b] {
            *d = 1;
        }
    }
    cur.into_owned()
}

/// Reduce a contiguous row: pairwise halving down to leaves of 4096 that `leaf` reduces
/// (over vector lanes), so f32 sums stay accurate (error grows with log n).
fn reduce_row<T: FloatElement>(row: &[T], f: impl Fn(T, T) -> T + Copy, leaf: fn(&[T]) -> T) -> T {
    const LEAF: usize = 4096;
    if row.len() > LEAF {
        // Half rounded up to whole leaves: 0 < split < len whenever len > LEAF.
        let (a, b) = row.split_at((row.len() / 2).next_multiple_of(LEAF));
        return f(reduce_row(a, f, leaf), reduce_row(b, f, leaf));
    }
    leaf(row)
}

/// Reduce the middle axis of a contiguous `[outer, red, inner]` block with `f` from `id`.
fn reduce_block<T: FloatElement>(
    x: &[T],
    outer: usize,
    red: usize,
    inner: usize,
    id: T,
    f: impl Fn(T, T) -> T + Copy + Sync,
    leaf: fn(&[T]) -> T,
) -> Vec<T> {
    if inner == 1 {
        if outer == 1 && red > PAR_GRAIN {
            // One long row: partial results per chunk of a fixed size (so the result does
            // not depend on the thread count), combined in order.
            const CHUNK: usize = 1 << 18;
            let parts: Vec<T> = x.par_chunks(CHUNK).map(|c| reduce_row(c, f, leaf)).collect();
            return vec![reduce_row(&parts, f, leaf)];
        }
        // Rows: enough rows per task that each reads about PAR_GRAIN elements.
        return build_vec_grain(outer, PAR_GRAIN / red.max(1), |s, out| {
            for (i, o) in out.iter_mut().enumerate() {
                let r = s + i;
                o.write(reduce_row(&x[r * red..(r + 1) * red], f, leaf));
            }
        });
    }
    // Columns: fold whole rows of `inner` into an accumulator, streaming through memory.
    let fold_rows = |o: usize, rows: std::ops::Range<usize>| {
        let mut acc = vec![id; inner];
        for r in rows {
            let row = &x[(o * red + r) * inner..(o * red + r + 1) * inner];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a = f(*a, v);
            }
        }
        acc
    };
    if outer * red * inner <= PAR_GRAIN {
        return (0..outer).flat_map(|o| fold_rows(o, 0..red)).collect();
    }
    // Few outer blocks: also split the reduced rows into a fixed number of parts (so the
    // result does not depend on the thread count) and combine the partial rows in order.
    let parts = if outer >= 8 { 1 } else { (red * inner / PAR_GRAIN).clamp(1, 16).min(red) };
    let partial: Vec<Vec<T>> = (0..outer * parts)
        .into_par_iter()
        .map(|t| {
            let (o, p) = (t / parts, t % parts);
            fold_rows(o, p * red / parts..(p + 1) * red / parts)
        })
        .collect();
    let mut out = Vec::with_capacity(outer * inner);
    for block in partial.chunks(parts) {
        let mut acc = block[0].clone();
        for part in &block[1..] {
            for (a, &v) in acc.iter_mut().zip(part) {
                *a = f(*a, v);
            }
        }
        out.extend_from_slice(&acc);
    }
    out
}

/// Index of the first max (or min) along one axis, as i32.
pub(crate) fn reduce_arg<T: Element>(op: ReduceOp, x: &[T], l: &Layout, axis: usize) -> Vec<i32> {
    let x = contiguous(x, l);
    let dims = l.dims();
    let outer: usize = dims[..axis].iter().product();
    let red = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let better = |v: T, best: T| match op {
        ReduceOp::ArgMax => v > best,
        _ => v < best,
    };
    build_vec_grain(outer * inner, PAR_GRAIN / red.max(1), |s, out| {
        for (i, o) in out.iter_mut().enumerate() {
            let (ou, inn) = ((s + i) / inner, (s + i) % inner);
            let base = ou * red * inner + inn;
            let (mut best, mut at) = (x[base], 0);
            for r in 1..red {
                let v = x[base + r * inner];
                if better(v, best) {
                    best = v;
                    at = r;
                }
            }
            o.write(at as i32);
        }
    })
}

/// Sum, max or min of an integer view (for counting and label statistics).
pub(crate) fn reduce_int(op: ReduceOp, x: &[i32], l: &Layout, axes: &[usize]) -> Vec<i32> {
    // Integers are exact in f64 below 2^53, so reuse the float path.
    let xf: Vec<f64> = super::strided::map1(x, l, |v| v as f64);
    let lf = Layout::contiguous(l.shape().clone());
    reduce_float(op, &xf, &lf, axes).into_iter().map(|v| v as i32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduces_any_axes() {
        let x: Vec<f64> = (0..24).map(|v| v as f64).collect();
        let l = Layout::contiguous([2, 3, 4]);
        assert_eq!(reduce_float(ReduceOp::Sum, &x, &l, &[1]), vec![12., 15., 18., 21., 48., 51., 54., 57.]);
        assert_eq!(reduce_float(ReduceOp::Sum, &x, &l, &[0, 2]), vec![60., 92., 124.]);
        assert_eq!(reduce_float(ReduceOp::Max, &x, &l, &[0, 1, 2]), vec![23.]);
        let t = l.transpose(0, 2).unwrap(); // [4, 3, 2]
        assert_eq!(reduce_float(ReduceOp::Min, &x, &t, &[0]), vec![0., 12., 4., 16., 8., 20.]);
        assert_eq!(reduce_arg(ReduceOp::ArgMax, &x, &t, 0), vec![3; 6]);
    }

    #[test]
    fn parallel_rows_and_columns_match_a_naive_reduction() {
        // Large enough that rows and column blocks are split across tasks; odd sizes.
        for (a, b, c) in [(3usize, 1001usize, 37usize), (1, 4099, 300), (700, 3, 129), (2, 70_001, 1)] {
            let x: Vec<f64> = (0..a * b * c).map(|i| ((i * 7919) % 1013) as f64 - 506.0).collect();
            let l = Layout::contiguous([a, b, c]);
            for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min] {
                for axes in [vec![0], vec![1], vec![2], vec![0, 1], vec![1, 2], vec![0, 2], vec![0, 1, 2]] {
                    let got = reduce_float(op, &x, &l, &axes);
                    let odims: Vec<usize> = (0..3).map(|d| if axes.contains(&d) { 1 } else { [a, b, c][d] }).collect();
                    let mut want = vec![
                        match op {
                            ReduceOp::Sum => 0.0,
                            ReduceOp::Max => f64::NEG_INFINITY,
                            _ => f64::INFINITY,
                        };
                        odims.iter().product()
                    ];
                    for i in 0..a {
                        for j in 0..b {
                            for k in 0..c {
                                let o = [i, j, k];
                                let idx =
                                    (0..3).fold(0, |acc, d| acc * odims[d] + if axes.contains(&d) { 0 } else { o[d] });
                                let v = x[(i * b + j) * c + k];
                                want[idx] = match op {
                                    ReduceOp::Sum => want[idx] + v,
                                    ReduceOp::Max => want[idx].max(v),
                                    _ => want[idx].min(v),
                                };
                            }
                        }
                    }
                    assert_eq!(got, want, "{op:?} over {axes:?} of {:?}", [a, b, c]);
                }
            }
        }
    }

    #[test]
    fn max_and_min_propagate_nan() {
        let mut x = vec![1.0f32; 5000];
        x[4321] = f32::NAN;
        let l = Layout::contiguous([50, 100]);
        for op in [ReduceOp::Max, ReduceOp::Min] {
            assert!(reduce_float(op, &x, &l, &[0, 1])[0].is_nan());
            let rows = reduce_float(op, &x, &l, &[1]);
            assert!(rows[43].is_nan() && rows.iter().filter(|v| v.is_nan()).count() == 1);
            let cols = reduce_float(op, &x, &l, &[0]);
            assert!(cols[21].is_nan() && cols.iter().filter(|v| v.is_nan()).count() == 1);
        }
    }

    #[test]
    fn long_sums_stay_accurate() {
        let n = 1 << 22;
        let x = vec![0.1f32; n];
        let s = reduce_float(ReduceOp::Sum, &x, &Layout::contiguous([n]), &[0])[0];
        assert!((s - 0.1 * n as f32).abs() / (0.1 * n as f32) < 1e-5, "{s}");
    }
}

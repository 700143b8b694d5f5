//! Reductions. The input is made contiguous, then each run of adjacent reduced axes is
//! reduced as an `[outer, red, inner]` block, so every pass reads memory in order: rows
//! (`inner == 1`) reduce along contiguous memory, columns accumulate whole rows.

use super::strided::{build_vec, contiguous, PAR_GRAIN};
use crate::{Element, FloatElement, Layout, ReduceOp};
use rayon::prelude::*;

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
pub(crate) fn reduce_float<T: FloatElement>(op: ReduceOp, x: &[T], l: &Layout, axes: &[usize]) -> Vec<T> {
    let mut dims = l.dims().to_vec();
    let mut cur = contiguous(x, l).into_owned();
    // Reduce the innermost run first: it shrinks the data the most cheaply.
    for (a, b) in runs(axes).into_iter().rev() {
        let outer: usize = dims[..a].iter().product();
        let red: usize = dims[a..b].iter().product();
        let inner: usize = dims[b..].iter().product();
        cur = reduce_block(op, &cur, outer, red, inner);
        for d in &mut dims[a..b] {
            *d = 1;
        }
    }
    cur
}

fn combine<T: FloatElement>(op: ReduceOp, acc: T, v: T) -> T {
    match op {
        ReduceOp::Sum => acc + v,
        ReduceOp::Max => {
            if v > acc || v.is_nan() {
                v
            } else {
                acc
            }
        }
        ReduceOp::Min => {
            if v < acc || v.is_nan() {
                v
            } else {
                acc
            }
        }
        _ => unreachable!("arg reductions go through reduce_arg"),
    }
}

fn identity<T: FloatElement>(op: ReduceOp) -> T {
    match op {
        ReduceOp::Sum => T::zero(),
        ReduceOp::Max => T::neg_infinity(),
        ReduceOp::Min => T::infinity(),
        _ => unreachable!(),
    }
}

/// Reduce a contiguous row: pairwise halving down to blocks of 256, each block over eight
/// independent accumulators, so f32 sums stay accurate (error grows with log n) and the
/// inner loop vectorises.
fn reduce_row<T: FloatElement>(op: ReduceOp, row: &[T]) -> T {
    if row.len() > 256 {
        let (a, b) = row.split_at(row.len() / 2 / 8 * 8);
        return combine(op, reduce_row(op, a), reduce_row(op, b));
    }
    let mut acc = [identity::<T>(op); 8];
    let chunks = row.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] = combine(op, acc[k], c[k]);
        }
    }
    let mut r = identity::<T>(op);
    for &v in rest {
        r = combine(op, r, v);
    }
    acc.iter().fold(r, |r, &a| combine(op, r, a))
}

fn reduce_block<T: FloatElement>(op: ReduceOp, x: &[T], outer: usize, red: usize, inner: usize) -> Vec<T> {
    if inner == 1 {
        if outer == 1 && red > PAR_GRAIN {
            // One long row: partial results per chunk, combined in a fixed order.
            let parts: Vec<T> = x.par_chunks(PAR_GRAIN).map(|c| reduce_row(op, c)).collect();
            return vec![reduce_row(op, &parts)];
        }
        return build_vec(outer, |s, out| {
            for (i, o) in out.iter_mut().enumerate() {
                let r = s + i;
                o.write(reduce_row(op, &x[r * red..(r + 1) * red]));
            }
        });
    }
    // Columns: accumulate whole inner rows. Parallel over outer blocks.
    let mut out = vec![identity::<T>(op); outer * inner];
    let work = |(o, acc): (usize, &mut [T])| {
        let base = o * red * inner;
        for r in 0..red {
            let row = &x[base + r * inner..base + (r + 1) * inner];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a = combine(op, *a, v);
            }
        }
    };
    if outer * red * inner > PAR_GRAIN && outer > 1 {
        out.par_chunks_mut(inner).enumerate().for_each(work);
    } else {
        out.chunks_mut(inner).enumerate().for_each(work);
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
    build_vec(outer * inner, |s, out| {
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
    fn long_sums_stay_accurate() {
        let n = 1 << 22;
        let x = vec![0.1f32; n];
        let s = reduce_float(ReduceOp::Sum, &x, &Layout::contiguous([n]), &[0])[0];
        assert!((s - 0.1 * n as f32).abs() / (0.1 * n as f32) < 1e-5, "{s}");
    }
}

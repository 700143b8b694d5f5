//! Fused row-wise kernels over the last axis: softmax, layer/RMS norm, cross-entropy,
//! each with its backward, and the AdamW update. Each row is finished while it is in
//! L1 (statistics, then the output), rows are spread over threads in blocks, outputs are
//! written once without a zero fill, and exp goes through the vector kernels of `simd`.

use super::simd::{assume_init, VecMath};
use super::strided::{build_vec_grain, output_vec, PAR_GRAIN};
use crate::backend::{AdamWStep, CrossEntropyOpts};
use crate::{Error, FloatElement, NormKind, Result};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Rows per parallel task so each task has about PAR_GRAIN elements.
fn rows_per_task(cols: usize) -> usize {
    (PAR_GRAIN / cols.max(1)).max(1)
}

/// A new `[rows, cols]` array whose rows `f(r, row)` writes, rows in parallel blocks.
/// `f` must write every element of its row.
fn build_rows<T: Send + Copy>(rows: usize, cols: usize, f: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync) -> Vec<T> {
    if cols == 0 {
        return Vec::new();
    }
    build_vec_grain(rows * cols, rows_per_task(cols) * cols, |s, chunk| {
        for (i, row) in chunk.chunks_mut(cols).enumerate() {
            f(s / cols + i, row);
        }
    })
}

/// One value per row, rows in parallel blocks.
fn per_row<U: Send + Copy>(rows: usize, cols: usize, f: impl Fn(usize) -> U + Sync) -> Vec<U> {
    build_vec_grain(rows, rows_per_task(cols), |s, out| {
        for (i, o) in out.iter_mut().enumerate() {
            o.write(f(s + i));
        }
    })
}

/// The largest element (NaN if any is: the row's outputs are NaN either way).
fn row_max<T: VecMath>(x: &[T]) -> T {
    T::max_row(x)
}

fn row_sum<T: VecMath>(x: &[T]) -> T {
    T::sum_row(x)
}

fn rows_of(len: usize, cols: usize) -> usize {
    len.checked_div(cols).unwrap_or(0)
}

pub(crate) fn softmax<T: VecMath>(x: &[T], cols: usize, log: bool) -> Vec<T> {
    build_rows(rows_of(x.len(), cols), cols, |r, o| {
        let row = &x[r * cols..(r + 1) * cols];
        let m = row_max(row);
        if log {
            let lse = m + T::sum_exp_shift(row, m).ln();
            for (o, &v) in o.iter_mut().zip(row) {
                o.write(v - lse);
            }
        } else {
            let sum = T::exp_shift(row, m, o);
            // SAFETY: exp_shift wrote the whole row.
            let o = unsafe { assume_init(o) };
            let inv = T::one() / sum;
            o.iter_mut().for_each(|o| *o = *o * inv);
        }
    })
}

pub(crate) fn softmax_grad<T: VecMath>(y: &[T], g: &[T], cols: usize, log: bool) -> Vec<T> {
    build_rows(rows_of(y.len(), cols), cols, |r, o| {
        let (y, g) = (&y[r * cols..(r + 1) * cols], &g[r * cols..(r + 1) * cols]);
        if log {
            // d/dx log_softmax: g - softmax * sum(g), softmax = exp(y)
            let s = row_sum(g);
            T::exp_shift(y, T::zero(), o);
            // SAFETY: exp_shift wrote the whole row.
            let o = unsafe { assume_init(o) };
            for (o, &g) in o.iter_mut().zip(g) {
                *o = g - *o * s;
            }
        } else {
            // d/dx softmax: y * (g - sum(g * y))
            let s = T::dot(y, g);
            for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
                o.write(y * (g - s));
            }
        }
    })
}

/// (mean, 1 / sqrt(mean square + eps)) of a row; the mean is 0 for RMS norm.
fn norm_stats<T: VecMath>(kind: NormKind, row: &[T], eps: T) -> (T, T) {
    let n = T::from_usize(row.len());
    // Two passes (mean, then squared deviations) over a row that is in L1 by then.
    let mean = if kind == NormKind::Layer { row_sum(row) / n } else { T::zero() };
    let ms = T::sum_sq_diff(row, mean) / n;
    (mean, T::one() / (ms + eps).sqrt())
}

/// Returns (y, mean (layer norm only), rstd).
pub(crate) fn norm<T: VecMath>(
    kind: NormKind,
    x: &[T],
    cols: usize,
    w: Option<&[T]>,
    b: Option<&[T]>,
    eps: f64,
) -> (Vec<T>, Option<Vec<T>>, Vec<T>) {
    let rows = rows_of(x.len(), cols);
    let eps = T::from_f64(eps);
    let mut y: Vec<T> = output_vec(rows * cols);
    let mut stats: Vec<(T, T)> = output_vec(rows);
    if cols > 0 {
        let per = rows_per_task(cols);
        let ys = &mut y.spare_capacity_mut()[..rows * cols];
        let ss = &mut stats.spare_capacity_mut()[..rows];
        let block = |t: usize, yc: &mut [MaybeUninit<T>], sc: &mut [MaybeUninit<(T, T)>]| {
            for (i, (o, st)) in yc.chunks_mut(cols).zip(sc.iter_mut()).enumerate() {
                let r = t * per + i;
                let row = &x[r * cols..(r + 1) * cols];
                let (mean, rstd) = norm_stats(kind, row, eps);
                st.write((mean, rstd));
                let h = |v: T| (v - mean) * rstd;
                let vals = o.iter_mut().zip(row);
                match (w, b) {
                    (Some(w), Some(b)) => vals.zip(w.iter().zip(b)).for_each(|((o, &v), (&w, &b))| {
                        o.write(h(v) * w + b);
                    }),
                    (Some(w), None) => vals.zip(w).for_each(|((o, &v), &w)| {
                        o.write(h(v) * w);
                    }),
                    (None, Some(b)) => vals.zip(b).for_each(|((o, &v), &b)| {
                        o.write(h(v) + b);
                    }),
                    (None, None) => vals.for_each(|(o, &v)| {
                        o.write(h(v));
                    }),
                }
            }
        };
        if rows <= per {
            block(0, ys, ss);
        } else {
            ys.par_chunks_mut(per * cols)
                .zip(ss.par_chunks_mut(per))
                .enumerate()
                .for_each(|(t, (yc, sc))| block(t, yc, sc));
        }
    }
    // SAFETY: with cols > 0 every row and its statistics were written above; with cols
    // == 0 there are no elements and `rows` is 0.
    unsafe {
        y.set_len(rows * cols);
        stats.set_len(rows);
    }
    let mean = (kind == NormKind::Layer).then(|| stats.iter().map(|s| s.0).collect());
    (y, mean, stats.iter().map(|s| s.1).collect())
}

/// Returns (dx, dweight, dbias).
#[allow(clippy::too_many_arguments)]
pub(crate) fn norm_grad<T: FloatElement>(
    kind: NormKind,
    x: &[T],
    cols: usize,
    w: Option<&[T]>,
    has_bias: bool,
    mean: Option<&[T]>,
    rstd: &[T],
    g: &[T],
) -> (Vec<T>, Option<Vec<T>>, Option<Vec<T>>) {
    let n = T::from_usize(cols);
    let rows = rstd.len();
    let dx = build_rows(rows, cols, |r, o| {
        let (xr, gr) = (&x[r * cols..(r + 1) * cols], &g[r * cols..(r + 1) * cols]);
        let (m, rs) = (mean.map_or(T::zero(), |m| m[r]), rstd[r]);
        let xhat = |v: T| (v - m) * rs;
        // gh = g * w: the gradient with respect to the normalised row.
        let gh = |j: usize| w.map_or(gr[j], |w| gr[j] * w[j]);
        let (mut s1, mut s2) = (T::zero(), T::zero());
        for (j, &v) in xr.iter().enumerate() {
            s1 = s1 + gh(j);
            s2 = s2 + gh(j) * xhat(v);
        }
        let (m1, m2) = (s1 / n, s2 / n);
        let centre = if kind == NormKind::Layer { m1 } else { T::zero() };
        for (j, (o, &v)) in o.iter_mut().zip(xr).enumerate() {
            o.write(rs * (gh(j) - centre - xhat(v) * m2));
        }
    });
    if w.is_none() && !has_bias {
        return (dx, None, None);
    }
    // dweight = sum over rows of g * xhat, dbias = sum of g: per-task partial sums over
    // row blocks, combined in a fixed order so results do not depend on scheduling.
    let per = rows_per_task(cols);
    let part = |t: usize| {
        let (mut dw, mut db) = (vec![T::zero(); cols], vec![T::zero(); cols]);
        for r in t * per..((t + 1) * per).min(rows) {
            let (xr, gr) = (&x[r * cols..(r + 1) * cols], &g[r * cols..(r + 1) * cols]);
            let (m, rs) = (mean.map_or(T::zero(), |m| m[r]), rstd[r]);
            for (((a, b), &v), &gv) in dw.iter_mut().zip(db.iter_mut()).zip(xr).zip(gr) {
                *a = *a + gv * ((v - m) * rs);
                *b = *b + gv;
            }
        }
        (dw, db)
    };
    let tasks = rows.div_ceil(per);
    let parts: Vec<(Vec<T>, Vec<T>)> =
        if tasks <= 1 { (0..tasks).map(part).collect() } else { (0..tasks).into_par_iter().map(part).collect() };
    let (mut dw, mut db) = (vec![T::zero(); cols], vec![T::zero(); cols]);
    for (pw, pb) in parts {
        dw.iter_mut().zip(pw).for_each(|(a, p)| *a = *a + p);
        db.iter_mut().zip(pb).for_each(|(a, p)| *a = *a + p);
    }
    (dx, w.map(|_| dw), has_bias.then_some(db))
}

fn check_target(t: i32, c: usize, opts: &CrossEntropyOpts) -> Result<Option<usize>> {
    if t as i64 == opts.ignore_index {
        return Ok(None);
    }
    if t < 0 || t as usize >= c {
        return Err(Error::IndexOutOfRange { op: "cross_entropy", index: t as i64, size: c });
    }
    Ok(Some(t as usize))
}

/// Per-row loss and log-sum-exp.
pub(crate) fn cross_entropy<T: VecMath>(
    logits: &[T],
    c: usize,
    targets: &[i32],
    opts: CrossEntropyOpts,
) -> Result<(Vec<T>, Vec<T>)> {
    for &t in targets {
        check_target(t, c, &opts)?;
    }
    let eps = T::from_f64(opts.label_smoothing);
    let cf = T::from_usize(c);
    let res: Vec<(T, T)> = per_row(targets.len(), c, |r| {
        let row = &logits[r * c..(r + 1) * c];
        let m = row_max(row);
        let lse = m + T::sum_exp_shift(row, m).ln();
        let loss = match check_target(targets[r], c, &opts).unwrap() {
            None => T::zero(),
            Some(t) => {
                let nll = lse - row[t];
                if opts.label_smoothing == 0.0 {
                    nll
                } else {
                    let mean = row_sum(row) / cf;
                    (T::one() - eps) * nll + eps * (lse - mean)
                }
            }
        };
        (loss, lse)
    });
    Ok((res.iter().map(|r| r.0).collect(), res.iter().map(|r| r.1).collect()))
}

pub(crate) fn cross_entropy_grad<T: VecMath>(
    logits: &[T],
    c: usize,
    targets: &[i32],
    lse: &[T],
    g: &[T],
    opts: CrossEntropyOpts,
) -> Result<Vec<T>> {
    for &t in targets {
        check_target(t, c, &opts)?;
    }
    let eps = T::from_f64(opts.label_smoothing);
    let uniform = eps / T::from_usize(c);
    Ok(build_rows(targets.len(), c, |r, o| {
        let Some(t) = check_target(targets[r], c, &opts).unwrap() else {
            o.iter_mut().for_each(|o| {
                o.write(T::zero());
            });
            return;
        };
        // g * (softmax - onehot * (1 - eps) - eps / c)
        let row = &logits[r * c..(r + 1) * c];
        T::exp_shift(row, lse[r], o);
        // SAFETY: exp_shift wrote the whole row.
        let o = unsafe { assume_init(o) };
        let (gr, p_t) = (g[r], o[t]);
        o.iter_mut().for_each(|o| *o = gr * (*o - uniform));
        o[t] = gr * (p_t - (T::one() - eps) - uniform);
    }))
}

pub(crate) fn adamw<T: FloatElement>(p: &[T], g: &[T], m: &[T], v: &[T], hp: AdamWStep) -> (Vec<T>, Vec<T>, Vec<T>) {
    let f = |x: f64| T::from_f64(x);
    let (b1, b2) = (f(hp.beta1), f(hp.beta2));
    let bc1 = 1.0 - hp.beta1.powi(hp.step as i32);
    let bc2 = 1.0 - hp.beta2.powi(hp.step as i32);
    let (lr, eps) = (f(hp.lr), f(hp.eps));
    let decay = f(1.0 - hp.lr * hp.weight_decay);
    let (inv_bc1, inv_sqrt_bc2) = (f(1.0 / bc1), f(1.0 / bc2.sqrt()));
    let n = p.len();
    let (mut po, mut mo, mut vo): (Vec<T>, Vec<T>, Vec<T>) = (output_vec(n), output_vec(n), output_vec(n));
    let (ps, ms, vs) =
        (&mut po.spare_capacity_mut()[..n], &mut mo.spare_capacity_mut()[..n], &mut vo.spare_capacity_mut()[..n]);
    let step = |s: usize, pc: &mut [MaybeUninit<T>], mc: &mut [MaybeUninit<T>], vc: &mut [MaybeUninit<T>]| {
        let len = pc.len();
        let (p, g, m, v) = (&p[s..s + len], &g[s..s + len], &m[s..s + len], &v[s..s + len]);
        for i in 0..len {
            let gi = g[i];
            let mi = b1 * m[i] + (T::one() - b1) * gi;
            let vi = b2 * v[i] + (T::one() - b2) * gi * gi;
            let denom = vi.sqrt() * inv_sqrt_bc2 + eps;
            pc[i].write(p[i] * decay - lr * (mi * inv_bc1) / denom);
            mc[i].write(mi);
            vc[i].write(vi);
        }
    };
    if n <= PAR_GRAIN {
        // Small parameters stay on the calling thread (a trip through the pool costs more).
        step(0, ps, ms, vs);
    } else {
        ps.par_chunks_mut(PAR_GRAIN)
            .zip(ms.par_chunks_mut(PAR_GRAIN).zip(vs.par_chunks_mut(PAR_GRAIN)))
            .enumerate()
            .for_each(|(t, (pc, (mc, vc)))| step(t * PAR_GRAIN, pc, mc, vc));
    }
    // SAFETY: the chunks cover 0..n and every element of each was written.
    unsafe {
        po.set_len(n);
        mo.set_len(n);
        vo.set_len(n);
    }
    (po, mo, vo)
}

#[cfg(test)]
mod tests;

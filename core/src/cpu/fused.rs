//! Fused row-wise kernels over the last axis: softmax, layer/RMS norm, cross-entropy,
//! each with its backward, and the AdamW update.

use super::strided::{build_vec, PAR_GRAIN};
use crate::backend::{AdamWStep, CrossEntropyOpts};
use crate::{Error, FloatElement, NormKind, Result};
use rayon::prelude::*;

/// Rows per parallel task so each task has about PAR_GRAIN elements.
fn rows_per_task(cols: usize) -> usize {
    (PAR_GRAIN / cols.max(1)).max(1)
}

fn for_rows<T: FloatElement>(out: &mut [T], cols: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if cols == 0 {
        return;
    }
    let per = rows_per_task(cols);
    out.par_chunks_mut(per * cols).enumerate().for_each(|(t, chunk)| {
        for (i, row) in chunk.chunks_mut(cols).enumerate() {
            f(t * per + i, row);
        }
    });
}

fn row_max<T: FloatElement>(x: &[T]) -> T {
    x.iter().fold(T::neg_infinity(), |m, &v| if v > m { v } else { m })
}

pub(crate) fn softmax<T: FloatElement>(x: &[T], cols: usize, log: bool) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    for_rows(&mut out, cols, |r, o| {
        let row = &x[r * cols..(r + 1) * cols];
        let m = row_max(row);
        let mut sum = T::zero();
        for (o, &v) in o.iter_mut().zip(row) {
            *o = (v - m).exp();
            sum = sum + *o;
        }
        if log {
            let lse = m + sum.ln();
            for (o, &v) in o.iter_mut().zip(row) {
                *o = v - lse;
            }
        } else {
            let inv = T::one() / sum;
            o.iter_mut().for_each(|o| *o = *o * inv);
        }
    });
    out
}

pub(crate) fn softmax_grad<T: FloatElement>(y: &[T], g: &[T], cols: usize, log: bool) -> Vec<T> {
    let mut out = vec![T::zero(); y.len()];
    for_rows(&mut out, cols, |r, o| {
        let (y, g) = (&y[r * cols..(r + 1) * cols], &g[r * cols..(r + 1) * cols]);
        if log {
            // d/dx log_softmax: g - softmax * sum(g)
            let s: T = g.iter().copied().sum();
            for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
                *o = g - y.exp() * s;
            }
        } else {
            // d/dx softmax: y * (g - sum(g * y))
            let s: T = y.iter().zip(g).map(|(&y, &g)| y * g).sum();
            for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
                *o = y * (g - s);
            }
        }
    });
    out
}

/// Returns (y, mean (layer norm only), rstd).
pub(crate) fn norm<T: FloatElement>(
    kind: NormKind,
    x: &[T],
    cols: usize,
    w: Option<&[T]>,
    b: Option<&[T]>,
    eps: f64,
) -> (Vec<T>, Option<Vec<T>>, Vec<T>) {
    let rows = x.len().checked_div(cols).unwrap_or(0);
    let n = T::from_usize(cols);
    let eps = T::from_f64(eps);
    let stats: Vec<(T, T)> = build_vec(rows, |s, out| {
        for (i, o) in out.iter_mut().enumerate() {
            let row = &x[(s + i) * cols..(s + i + 1) * cols];
            let (mean, ms) = match kind {
                NormKind::Layer => {
                    let mean = row.iter().copied().sum::<T>() / n;
                    (mean, row.iter().map(|&v| (v - mean) * (v - mean)).sum::<T>() / n)
                }
                NormKind::Rms => (T::zero(), row.iter().map(|&v| v * v).sum::<T>() / n),
            };
            o.write((mean, T::one() / (ms + eps).sqrt()));
        }
    });
    let mut y = vec![T::zero(); x.len()];
    for_rows(&mut y, cols, |r, o| {
        let (mean, rstd) = stats[r];
        let row = &x[r * cols..(r + 1) * cols];
        for (j, (o, &v)) in o.iter_mut().zip(row).enumerate() {
            let mut h = (v - mean) * rstd;
            if let Some(w) = w {
                h = h * w[j];
            }
            if let Some(b) = b {
                h = h + b[j];
            }
            *o = h;
        }
    });
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
    let xhat = |r: usize, j: usize| {
        let m = mean.map_or(T::zero(), |m| m[r]);
        (x[r * cols + j] - m) * rstd[r]
    };
    let mut dx = vec![T::zero(); x.len()];
    for_rows(&mut dx, cols, |r, o| {
        let gr = &g[r * cols..(r + 1) * cols];
        let gh = |j: usize| w.map_or(gr[j], |w| gr[j] * w[j]);
        let (mut s1, mut s2) = (T::zero(), T::zero());
        for j in 0..cols {
            s1 = s1 + gh(j);
            s2 = s2 + gh(j) * xhat(r, j);
        }
        let (m1, m2) = (s1 / n, s2 / n);
        for (j, o) in o.iter_mut().enumerate() {
            let centred = if kind == NormKind::Layer { gh(j) - m1 } else { gh(j) };
            *o = rstd[r] * (centred - xhat(r, j) * m2);
        }
    });
    let rows = rstd.len();
    // Column sums over rows, in per-task partials combined in a fixed order.
    let col_sums = |f: &(dyn Fn(usize, usize) -> T + Sync)| -> Vec<T> {
        let per = rows_per_task(cols);
        let tasks = rows.div_ceil(per);
        let parts: Vec<Vec<T>> = (0..tasks)
            .into_par_iter()
            .map(|t| {
                let mut acc = vec![T::zero(); cols];
                for r in t * per..((t + 1) * per).min(rows) {
                    for (j, a) in acc.iter_mut().enumerate() {
                        *a = *a + f(r, j);
                    }
                }
                acc
            })
            .collect();
        parts.into_iter().fold(vec![T::zero(); cols], |mut a, p| {
            a.iter_mut().zip(p).for_each(|(a, p)| *a = *a + p);
            a
        })
    };
    let dw = w.map(|_| col_sums(&|r, j| g[r * cols + j] * xhat(r, j)));
    let db = has_bias.then(|| col_sums(&|r, j| g[r * cols + j]));
    (dx, dw, db)
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
pub(crate) fn cross_entropy<T: FloatElement>(
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
    let res: Vec<(T, T)> = build_vec(targets.len(), |s, out| {
        for (i, o) in out.iter_mut().enumerate() {
            let r = s + i;
            let row = &logits[r * c..(r + 1) * c];
            let m = row_max(row);
            let lse = m + row.iter().map(|&v| (v - m).exp()).sum::<T>().ln();
            let loss = match check_target(targets[r], c, &opts).unwrap() {
                None => T::zero(),
                Some(t) => {
                    let nll = lse - row[t];
                    if opts.label_smoothing == 0.0 {
                        nll
                    } else {
                        let mean = row.iter().copied().sum::<T>() / cf;
                        (T::one() - eps) * nll + eps * (lse - mean)
                    }
                }
            };
            o.write((loss, lse));
        }
    });
    Ok((res.iter().map(|r| r.0).collect(), res.iter().map(|r| r.1).collect()))
}

pub(crate) fn cross_entropy_grad<T: FloatElement>(
    logits: &[T],
    c: usize,
    targets: &[i32],
    lse: &[T],
    g: &[T],
    opts: CrossEntropyOpts,
) -> Result<Vec<T>> {
    let eps = T::from_f64(opts.label_smoothing);
    let uniform = eps / T::from_usize(c);
    let mut out = vec![T::zero(); logits.len()];
    for_rows(&mut out, c, |r, o| {
        let Some(t) = check_target(targets[r], c, &opts).unwrap() else {
            return;
        };
        let row = &logits[r * c..(r + 1) * c];
        for (j, (o, &v)) in o.iter_mut().zip(row).enumerate() {
            let onehot = if j == t { T::one() - eps } else { T::zero() };
            *o = g[r] * ((v - lse[r]).exp() - onehot - uniform);
        }
    });
    Ok(out)
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
    let mut po = vec![T::zero(); n];
    let mut mo = vec![T::zero(); n];
    let mut vo = vec![T::zero(); n];
    po.par_chunks_mut(PAR_GRAIN)
        .zip(mo.par_chunks_mut(PAR_GRAIN).zip(vo.par_chunks_mut(PAR_GRAIN)))
        .enumerate()
        .for_each(|(t, (pc, (mc, vc)))| {
            let s = t * PAR_GRAIN;
            for i in 0..pc.len() {
                let (gi, j) = (g[s + i], s + i);
                let mi = b1 * m[j] + (T::one() - b1) * gi;
                let vi = b2 * v[j] + (T::one() - b2) * gi * gi;
                let denom = vi.sqrt() * inv_sqrt_bc2 + eps;
                pc[i] = p[j] * decay - lr * (mi * inv_bc1) / denom;
                mc[i] = mi;
                vc[i] = vi;
            }
        });
    (po, mo, vo)
}

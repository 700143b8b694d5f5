//! The fused kernels against plain f64 formulas, on shapes large enough to be split
//! across threads and with odd row lengths (vector tails).

use super::*;

fn data(n: usize, seed: u64) -> Vec<f64> {
    // A cheap deterministic spread over about [-6, 6].
    (0..n).map(|i| ((i as u64 * 2654435761 + seed * 97) % 10007) as f64 / 10007.0 * 12.0 - 6.0).collect()
}

fn to32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn close(name: &str, got: &[f32], want: &[f64], rel: f64, abs: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - w).abs() <= abs + rel * w.abs(), "{name}[{i}]: {g} vs {w}");
    }
}

const SHAPES: [(usize, usize); 4] = [(300, 257), (5, 1), (3, 8), (40, 1031)];

fn naive_softmax(x: &[f64], cols: usize, log: bool) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|r| {
            let m = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = r.iter().map(|v| (v - m).exp()).sum();
            r.iter().map(move |v| if log { v - m - s.ln() } else { (v - m).exp() / s }).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn softmax_and_its_grad_match_the_formulas() {
    for (rows, cols) in SHAPES {
        let x = data(rows * cols, 1);
        let g = data(rows * cols, 2);
        for log in [false, true] {
            let want = naive_softmax(&x, cols, log);
            close("softmax", &softmax(&to32(&x), cols, log), &want, 1e-5, 1e-6);
            assert_eq!(softmax(&x, cols, log).len(), want.len());
            // grad through the saved output y
            let y = want.clone();
            let gw: Vec<f64> = y
                .chunks(cols)
                .zip(g.chunks(cols))
                .flat_map(|(y, g)| {
                    if log {
                        let s: f64 = g.iter().sum();
                        y.iter().zip(g).map(|(y, g)| g - y.exp() * s).collect::<Vec<_>>()
                    } else {
                        let s: f64 = y.iter().zip(g).map(|(y, g)| y * g).sum();
                        y.iter().zip(g).map(|(y, g)| y * (g - s)).collect::<Vec<_>>()
                    }
                })
                .collect();
            let got = softmax_grad(&to32(&y), &to32(&g), cols, log);
            close("softmax_grad", &got, &gw, 1e-4, 2e-5 * cols as f64);
            let got64 = softmax_grad(&y, &g, cols, log);
            close("softmax_grad f64", &to32(&got64), &gw, 1e-6, 1e-6);
        }
    }
}

#[test]
fn softmax_rows_with_infinities_and_nan() {
    let x = [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, 1.0, f32::NAN, 2.0];
    let y = softmax(&x, 3, false);
    assert_eq!(&y[..3], &[0.0, 1.0, 0.0]);
    assert!(y[3..].iter().all(|v| v.is_nan()));
}

#[test]
fn norms_and_their_grads_match_the_formulas() {
    for (rows, cols) in SHAPES {
        let x = data(rows * cols, 3);
        let w = data(cols, 4);
        let b = data(cols, 5);
        let g = data(rows * cols, 6);
        for kind in [NormKind::Layer, NormKind::Rms] {
            for (wo, bo) in [(Some(&w[..]), Some(&b[..])), (None, None), (Some(&w[..]), None), (None, Some(&b[..]))] {
                let (y, mean, rstd) = norm(kind, &x, cols, wo, bo, 1e-5);
                let (y32, _, _) = norm(kind, &to32(&x), cols, wo.map(to32).as_deref(), bo.map(to32).as_deref(), 1e-5);
                assert_eq!(mean.is_some(), kind == NormKind::Layer);
                let (mut dw_want, mut db_want) = (vec![0.0; cols], vec![0.0; cols]);
                let mut dx_want = Vec::new();
                for r in 0..rows {
                    let row = &x[r * cols..(r + 1) * cols];
                    let m = if kind == NormKind::Layer { row.iter().sum::<f64>() / cols as f64 } else { 0.0 };
                    let ms = row.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / cols as f64;
                    let rs = 1.0 / (ms + 1e-5).sqrt();
                    assert!((rstd[r] - rs).abs() < 1e-12 * rs);
                    let xh: Vec<f64> = row.iter().map(|v| (v - m) * rs).collect();
                    let gr = &g[r * cols..(r + 1) * cols];
                    let gh: Vec<f64> = (0..cols).map(|j| gr[j] * wo.map_or(1.0, |w| w[j])).collect();
                    let m1 = gh.iter().sum::<f64>() / cols as f64;
                    let m2 = gh.iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>() / cols as f64;
                    for j in 0..cols {
                        let yw = xh[j] * wo.map_or(1.0, |w| w[j]) + bo.map_or(0.0, |b| b[j]);
                        assert!((y[r * cols + j] - yw).abs() < 1e-10 * (1.0 + yw.abs()));
                        assert!((y32[r * cols + j] as f64 - yw).abs() < 2e-5 * (1.0 + yw.abs()));
                        let c = if kind == NormKind::Layer { m1 } else { 0.0 };
                        dx_want.push(rs * (gh[j] - c - xh[j] * m2));
                        dw_want[j] += gr[j] * xh[j];
                        db_want[j] += gr[j];
                    }
                }
                let (dx, dw, db) = norm_grad(kind, &x, cols, wo, bo.is_some(), mean.as_deref(), &rstd, &g);
                close("norm dx", &to32(&dx), &dx_want, 1e-6, 1e-6);
                assert_eq!(dw.is_some(), wo.is_some());
                assert_eq!(db.is_some(), bo.is_some());
                if let Some(dw) = dw {
                    close("norm dw", &to32(&dw), &dw_want, 1e-6, 1e-6);
                }
                if let Some(db) = db {
                    close("norm db", &to32(&db), &db_want, 1e-6, 1e-6);
                }
            }
        }
    }
}

#[test]
fn cross_entropy_and_its_grad_match_the_formulas() {
    for (rows, cols) in SHAPES {
        let x = data(rows * cols, 7);
        let t: Vec<i32> = (0..rows).map(|r| if r % 5 == 3 { -100 } else { ((r * 31) % cols) as i32 }).collect();
        let g = data(rows, 8);
        for smoothing in [0.0, 0.1] {
            let opts = CrossEntropyOpts { ignore_index: -100, label_smoothing: smoothing };
            let (loss, lse) = cross_entropy(&to32(&x), cols, &t, opts).unwrap();
            let grad = cross_entropy_grad(&to32(&x), cols, &t, &lse, &to32(&g), opts).unwrap();
            for r in 0..rows {
                let row = &x[r * cols..(r + 1) * cols];
                let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let l = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                assert!((lse[r] as f64 - l).abs() < 1e-5 * (1.0 + l.abs()), "lse row {r}");
                let (want, gw): (f64, Vec<f64>) = if t[r] < 0 {
                    (0.0, vec![0.0; cols])
                } else {
                    let tr = t[r] as usize;
                    let mean = row.iter().sum::<f64>() / cols as f64;
                    let loss = (1.0 - smoothing) * (l - row[tr]) + smoothing * (l - mean);
                    let gw = (0..cols)
                        .map(|j| {
                            let onehot = if j == tr { 1.0 - smoothing } else { 0.0 };
                            g[r] * ((row[j] - l).exp() - onehot - smoothing / cols as f64)
                        })
                        .collect();
                    (loss, gw)
                };
                assert!((loss[r] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()), "loss row {r}");
                close("cross_entropy_grad", &grad[r * cols..(r + 1) * cols], &gw, 1e-5, 1e-6);
            }
        }
    }
    let bad = cross_entropy_grad(&[0.0f32; 4], 2, &[0, 2], &[0.0; 2], &[1.0; 2], CrossEntropyOpts::default());
    assert!(bad.is_err());
}

#[test]
fn adamw_matches_the_formula() {
    let n = PAR_GRAIN * 2 + 5;
    let (p, g, m, v) = (data(n, 9), data(n, 10), data(n, 11), data(n, 12).iter().map(|x| x.abs()).collect::<Vec<_>>());
    let hp = AdamWStep { lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1, step: 3 };
    let (po, mo, vo) = adamw(&p, &g, &m, &v, hp);
    for i in (0..n).step_by(997).chain([n - 1]) {
        let mi = 0.9 * m[i] + 0.1 * g[i];
        let vi = 0.99 * v[i] + 0.01 * g[i] * g[i];
        let (bc1, bc2) = (1.0 - 0.9f64.powi(3), 1.0 - 0.99f64.powi(3));
        let pi = p[i] * (1.0 - 1e-3) - 1e-2 * (mi / bc1) / ((vi / bc2).sqrt() + 1e-8);
        assert!((mo[i] - mi).abs() < 1e-12 && (vo[i] - vi).abs() < 1e-12 && (po[i] - pi).abs() < 1e-10, "at {i}");
    }
}

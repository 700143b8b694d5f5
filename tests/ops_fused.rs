//! Fused ops: softmax, log_softmax (any axis), layer_norm and rms_norm (with and without
//! weight and bias), cross_entropy (ignore_index, label_smoothing, mean/sum/none), mse and
//! one_hot. Gradients against finite differences on strided inputs; forwards against the
//! formulas evaluated row by row.

mod common;

use common::*;
use plies::autodiff::{CrossEntropyOpts, DType, Reduction, Result, Tensor};
use proptest::prelude::*;

/// Rows along `axis`: for each position of the other axes, the flat indices of the row.
fn rows_along(dims: &[usize], axis: usize) -> Vec<Vec<usize>> {
    let mut outer = dims.to_vec();
    outer[axis] = 1;
    (0..count(&outer))
        .map(|o| {
            let mut idx = unravel(o, &outer);
            (0..dims[axis])
                .map(|j| {
                    idx[axis] = j;
                    ravel(&idx, dims)
                })
                .collect()
        })
        .collect()
}

fn lse(row: &[f64]) -> f64 {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

fn softmax_ref(x: &[f64], dims: &[usize], axis: usize, log: bool) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for row in rows_along(dims, axis) {
        let vals: Vec<f64> = row.iter().map(|&i| x[i]).collect();
        let l = lse(&vals);
        for &i in &row {
            out[i] = if log { x[i] - l } else { (x[i] - l).exp() };
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn softmax_and_log_softmax(
        (src, axis) in any_source(1..=4, true).prop_flat_map(|s| {
            let r = s.dims.len() as i64;
            (Just(s), -r..r)
        })
    ) {
        let s = src.map(|u| 3.0 * u);
        let a = if axis < 0 { (axis + s.dims.len() as i64) as usize } else { axis as usize };
        gradcheck("softmax", |t| t[0].try_softmax(axis), &[s.array()]);
        gradcheck("log_softmax", |t| t[0].try_log_softmax(axis), &[s.array()]);
        for (dtype, tol) in [(DType::F64, 1e-13), (DType::F32, 2e-6)] {
            let v: Vec<f64> = s.values().iter().map(|&v| if dtype == DType::F32 { v as f32 as f64 } else { v }).collect();
            let x = Tensor::new(s.array_as(dtype));
            assert_close(&tvals(&x.softmax(axis)), &softmax_ref(&v, &s.dims, a, false), tol);
            assert_close(&tvals(&x.log_softmax(axis)), &softmax_ref(&v, &s.dims, a, true), tol);
        }
    }
}

// === Layer and RMS norm ===

#[derive(Clone, Debug)]
struct NormCase {
    x: Source,
    weight: Option<Source>,
    bias: Option<Source>,
    eps: f64,
}

fn norm_case() -> BoxedStrategy<NormCase> {
    any_source(1..=4, true)
        .prop_flat_map(|x| {
            let c = vec![*x.dims.last().unwrap()];
            let param = prop::option::of(source(c, true));
            (Just(x), param.clone(), param, prop_oneof![Just(1e-5), Just(1e-2)])
        })
        .prop_map(|(x, w, b, eps)| NormCase {
            x: x.map(|u| 2.0 * u),
            weight: w.map(|w| w.map(|u| 1.0 + 0.5 * u)),
            bias: b,
            eps,
        })
        .boxed()
}

/// The op's inputs in order: x, then the weight and bias that are present.
fn norm_inputs(c: &NormCase, with_bias: bool) -> Vec<plies::autodiff::Array> {
    let mut v = vec![c.x.array()];
    v.extend(c.weight.as_ref().map(|w| w.array()));
    if with_bias {
        v.extend(c.bias.as_ref().map(|b| b.array()));
    }
    v
}

fn norm_apply(c: &NormCase, t: &[Tensor], rms: bool) -> Result<Tensor> {
    let mut rest = t[1..].iter();
    let w = c.weight.as_ref().and_then(|_| rest.next());
    if rms {
        return t[0].try_rms_norm(w, c.eps);
    }
    let b = c.bias.as_ref().and_then(|_| rest.next());
    t[0].try_layer_norm(w, b, c.eps)
}

fn norm_ref(c: &NormCase, rms: bool) -> Vec<f64> {
    let x = c.x.values();
    let cols = *c.x.dims.last().unwrap();
    let w = c.weight.as_ref().map(|w| w.values());
    let b = if rms { None } else { c.bias.as_ref().map(|b| b.values()) };
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(cols) {
        let n = cols as f64;
        let mean = if rms { 0.0 } else { row.iter().sum::<f64>() / n };
        let ms = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        for (j, &v) in row.iter().enumerate() {
            let mut y = (v - mean) / (ms + c.eps).sqrt();
            if let Some(w) = &w {
                y *= w[j];
            }
            if let Some(b) = &b {
                y += b[j];
            }
            out.push(y);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn layer_norm(c in norm_case()) {
        // In f32, a near-constant row loses its centred values to rounding (amplified by
        // rstd up to 1/sqrt(eps)); the f32 kernels are compared on spread rows below.
        gradcheck_f64("layer_norm", |t| norm_apply(&c, t, false), &norm_inputs(&c, true));
        let ts: Vec<Tensor> = norm_inputs(&c, true).into_iter().map(Tensor::new).collect();
        assert_close(&tvals(&norm_apply(&c, &ts, false).unwrap()), &norm_ref(&c, false), 1e-12);
        let ts: Vec<Tensor> = norm_inputs(&c, true).into_iter().map(|a| Tensor::new(a.to_dtype(DType::F32).unwrap())).collect();
        assert_close(&tvals(&norm_apply(&c, &ts, false).unwrap()), &norm_ref(&c, false), 1e-4);
    }

    #[test]
    fn rms_norm(c in norm_case()) {
        gradcheck_f64("rms_norm", |t| norm_apply(&c, t, true), &norm_inputs(&c, false));
        let ts: Vec<Tensor> = norm_inputs(&c, false).into_iter().map(Tensor::new).collect();
        assert_close(&tvals(&norm_apply(&c, &ts, true).unwrap()), &norm_ref(&c, true), 1e-12);
    }

    /// The f32 norm kernels (forward and backward) agree with f64 on rows whose values are
    /// spread by construction (element j near 0.6 j, so no row is nearly constant).
    #[test]
    fn norms_f32_match_f64(c in norm_case().prop_filter("the row axis stays the base's last axis", |c| {
        // Without broadcast steps every shape in the chain has the view's rank.
        let r = c.x.dims.len();
        !c.x.is_broadcast() && c.x.steps.iter().all(|s| !matches!(s, Step::Permute(p) if p[r - 1] != r - 1))
    })) {
        let last = *c.x.base_dims.last().unwrap();
        let spread: Vec<f64> = c.x.base.iter().enumerate().map(|(i, &v)| 0.6 * (i % last) as f64 - 1.2 + 0.1 * v).collect();
        let c = NormCase { x: Source { base: spread, ..c.x.clone() }, ..c };
        let to32 = |v: Vec<plies::autodiff::Array>| v.iter().map(|a| cast_keep_layout(a, DType::F32)).collect::<Vec<_>>();
        f32_matches_f64("layer_norm", |t| norm_apply(&c, t, false), &to32(norm_inputs(&c, true)), 1e-4);
        f32_matches_f64("rms_norm", |t| norm_apply(&c, t, true), &to32(norm_inputs(&c, false)), 1e-4);
    }
}

// === Cross-entropy and MSE ===

#[derive(Clone, Debug)]
struct CeCase {
    logits: Source,
    /// Class ids, or `ignore_index`, as f64 over the row dims.
    targets: Source,
    opts: CrossEntropyOpts,
    reduction: Reduction,
}

fn ce_case() -> BoxedStrategy<CeCase> {
    (shape(0..=2), dim())
        .prop_flat_map(|(rows, c)| {
            let dims = [rows.clone(), vec![c]].concat();
            (
                source(dims, true),
                source(rows, true),
                Just(c),
                prop_oneof![Just(-100i64), Just(-1), Just(0)],
                prop_oneof![Just(0.0), Just(0.1), Just(0.3)],
                prop_oneof![Just(Reduction::Mean), Just(Reduction::Sum), Just(Reduction::None)],
            )
        })
        .prop_map(|(logits, targets, c, ignore_index, label_smoothing, reduction)| {
            // Class c (one past the last) stands for an ignored row.
            let targets = targets.map(|u| {
                let t = (((u + 1.0) / 2.0 * (c + 1) as f64).floor() as usize).min(c);
                if t == c {
                    ignore_index as f64
                } else {
                    t as f64
                }
            });
            CeCase {
                logits: logits.map(|u| 3.0 * u),
                targets,
                opts: CrossEntropyOpts { ignore_index, label_smoothing },
                reduction,
            }
        })
        .boxed()
}

/// Per-row losses (0 for ignored rows) and the number of rows that count.
fn ce_rows(c: &CeCase) -> (Vec<f64>, usize) {
    let x = c.logits.values();
    let classes = *c.logits.dims.last().unwrap();
    let eps = c.opts.label_smoothing;
    let mut kept = 0;
    let losses = x
        .chunks(classes)
        .zip(c.targets.values())
        .map(|(row, t)| {
            if t as i64 == c.opts.ignore_index {
                return 0.0;
            }
            kept += 1;
            let l = lse(row);
            let mean = row.iter().sum::<f64>() / classes as f64;
            (1.0 - eps) * (l - row[t as usize]) + eps * (l - mean)
        })
        .collect();
    (losses, kept)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn cross_entropy(c in ce_case()) {
        let (losses, kept) = ce_rows(&c);
        let targets = c.targets.array_as(DType::I32);
        let ce = |t: &[Tensor]| t[0].try_cross_entropy_with(&t[1], c.opts, c.reduction);
        let want = match c.reduction {
            Reduction::None => losses.clone(),
            Reduction::Sum => vec![losses.iter().sum()],
            // All rows ignored: 0/0, as in PyTorch.
            Reduction::Mean => vec![losses.iter().sum::<f64>() / kept as f64],
        };
        let y = ce(&[Tensor::new(c.logits.array()), Tensor::new(targets.clone())]).unwrap();
        let want_dims = if c.reduction == Reduction::None { c.targets.dims.clone() } else { vec![] };
        assert_eq!(y.dims(), want_dims);
        assert_close(&tvals(&y), &want, 1e-12);
        let y32 = ce(&[Tensor::new(c.logits.array_as(DType::F32)), Tensor::new(targets.clone())]).unwrap();
        assert_close(&tvals(&y32), &want, 1e-5);
        if !(c.reduction == Reduction::Mean && kept == 0) {
            gradcheck("cross_entropy", ce, &[c.logits.array(), targets]);
        }
    }

    #[test]
    fn mse((a, b) in shape(0..=4).prop_flat_map(|d| (source(d.clone(), true), source(d, true)))) {
        gradcheck("mse", |t| t[0].try_mse(&t[1]), &[a.array(), b.array()]);
        let n = a.values().len() as f64;
        let want = a.values().iter().zip(b.values()).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / n;
        let y = Tensor::new(a.array()).mse(&Tensor::new(b.array()));
        assert_eq!(y.dims(), Vec::<usize>::new());
        assert_close(&tvals(&y), &[want], 1e-14);
    }
}

#[test]
fn softmax_hand_values() {
    let l2 = 2f64.ln();
    let x = ten(&[0.0, l2, 0.0, 0.0], &[2, 2]);
    assert_close(&tvals(&x.softmax(-1)), &[1.0 / 3.0, 2.0 / 3.0, 0.5, 0.5], 1e-15);
    assert_close(&tvals(&x.log_softmax(1)), &[-(3f64.ln()), l2 - 3f64.ln(), -l2, -l2], 1e-15);
    // Along axis 0: columns [0, 0] and [ln 2, 0].
    assert_close(&tvals(&x.softmax(0)), &[0.5, 2.0 / 3.0, 0.5, 1.0 / 3.0], 1e-15);
    // Large logits do not overflow.
    assert_eq!(tvals(&ten(&[1000.0, 1000.0], &[2]).softmax(0)), [0.5, 0.5]);
    assert_close(&tvals(&ten(&[-1000.0, 0.0], &[2]).log_softmax(0)), &[-1000.0, 0.0], 1e-15);
    // Masked attention: -inf logits get probability 0 and gradient 0, the rest stay finite.
    let x = Tensor::param(arr(&[0.0, l2, 5.0], &[3]));
    let p = x.masked_fill(&iten(&[0, 0, 1], &[3]), f64::NEG_INFINITY).softmax(0);
    assert_close(&tvals(&p), &[1.0 / 3.0, 2.0 / 3.0, 0.0], 1e-15);
    p.mul(&ten(&[1.0, 0.0, 7.0], &[3])).sum_all().backward().unwrap();
    // d p0 / dx = p0 (e0 - p): [p0 (1 - p0), -p0 p1, 0].
    assert_close(&vals(&x.grad().unwrap()), &[2.0 / 9.0, -2.0 / 9.0, 0.0], 1e-15);
}

#[test]
fn norm_hand_values() {
    // [1, 2, 3]: mean 2, biased variance 2/3, so y = (x - 2) * sqrt(3/2).
    let s = 1.5f64.sqrt();
    let x = ten(&[1.0, 2.0, 3.0], &[1, 3]);
    assert_close(&tvals(&x.layer_norm(None, None, 0.0)), &[-s, 0.0, s], 1e-15);
    let (w, b) = (ten(&[1.0, 2.0, -1.0], &[3]), ten(&[0.5, 0.5, 0.5], &[3]));
    assert_close(&tvals(&x.layer_norm(Some(&w), Some(&b), 0.0)), &[0.5 - s, 0.5, 0.5 - s], 1e-15);
    // rms([3, 4]) = sqrt(12.5).
    let r = 12.5f64.sqrt();
    assert_close(&tvals(&ten(&[3.0, 4.0], &[2]).rms_norm(None, 0.0)), &[3.0 / r, 4.0 / r], 1e-15);
    assert_close(
        &tvals(&ten(&[3.0, 4.0], &[2]).rms_norm(Some(&ten(&[2.0, 0.5], &[2])), 0.0)),
        &[6.0 / r, 2.0 / r],
        1e-15,
    );
    // eps enters under the root: a constant row gives 0 rather than NaN.
    assert_eq!(tvals(&ten(&[5.0, 5.0], &[2]).layer_norm(None, None, 1e-5)), [0.0, 0.0]);
    // Gradients of the affine parameters: d/db = sum of g, d/dw = sum of g * xhat.
    let (w, b) = (Tensor::param(arr(&[1.0, 1.0, 1.0], &[3])), Tensor::param(arr(&[0.0, 0.0, 0.0], &[3])));
    let x2 = ten(&[1.0, 2.0, 3.0, 3.0, 2.0, 1.0], &[2, 3]);
    x2.layer_norm(Some(&w), Some(&b), 0.0).mul(&ten(&[1.0, 0.0, 0.0], &[3])).sum_all().backward().unwrap();
    assert_close(&vals(&b.grad().unwrap()), &[2.0, 0.0, 0.0], 1e-15);
    assert_close(&vals(&w.grad().unwrap()), &[0.0, 0.0, 0.0], 1e-15);
}

#[test]
fn cross_entropy_hand_values() {
    let (l2, l3, l4) = (2f64.ln(), 3f64.ln(), 4f64.ln());
    let logits = ten(&[0.0, 0.0, 0.0, l3], &[2, 2]);
    let t = iten(&[1, 1], &[2]);
    // Row 0: ln 2; row 1: ln 4 - ln 3.
    assert_close(&tvals(&logits.cross_entropy(&t)), &[(l2 + l4 - l3) / 2.0], 1e-15);
    let none = logits.cross_entropy_with(&t, CrossEntropyOpts::default(), Reduction::None);
    assert_close(&tvals(&none), &[l2, l4 - l3], 1e-15);
    let sum = logits.cross_entropy_with(&t, CrossEntropyOpts::default(), Reduction::Sum);
    assert_close(&tvals(&sum), &[l2 + l4 - l3], 1e-15);
    // Label smoothing 0.2 mixes in the uniform target: 0.8 nll + 0.2 (lse - mean logit).
    let smooth = CrossEntropyOpts { label_smoothing: 0.2, ..Default::default() };
    let row1 = 0.8 * (l4 - l3) + 0.2 * (l4 - l3 / 2.0);
    assert_close(&tvals(&logits.cross_entropy_with(&t, smooth, Reduction::None)), &[l2, row1], 1e-15);
    // An ignored row adds nothing and does not count in the mean.
    let t = iten(&[-100, 1], &[2]);
    assert_close(&tvals(&logits.cross_entropy(&t)), &[l4 - l3], 1e-15);
    let logits_p = Tensor::param(arr(&[0.0, 0.0, 0.0, l3], &[2, 2]));
    logits_p.cross_entropy(&t).backward().unwrap();
    // d/dlogits = softmax - onehot: row 1 softmax is [1/4, 3/4].
    assert_close(&vals(&logits_p.grad().unwrap()), &[0.0, 0.0, 0.25, -0.25], 1e-15);
    // Large logits stay finite.
    let big = ten(&[1000.0, 0.0, 0.0, 1000.0], &[2, 2]);
    assert_close(
        &tvals(&big.cross_entropy_with(&iten(&[0, 0], &[2]), CrossEntropyOpts::default(), Reduction::None)),
        &[0.0, 1000.0],
        1e-15,
    );
    // Every row ignored: the mean is 0/0 (PyTorch gives NaN too).
    assert!(tvals(&logits.cross_entropy(&iten(&[-100, -100], &[2])))[0].is_nan());
}

#[test]
fn one_hot_and_mse_hand_values() {
    let h = iten(&[2, 0], &[2]).one_hot(3, DType::F32);
    assert_eq!(h.dims(), [2, 3]);
    assert_eq!(h.to_vec::<f32>(), [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    assert_eq!(iten(&[1], &[]).one_hot(2, DType::F64).dims(), [2]);
    // An id outside 0..classes is an error (as in PyTorch), not an all-zero row.
    let e = err(iten(&[0, 3], &[2]).try_one_hot(3, DType::F32));
    assert_eq!(e, "index 3 out of range in one_hot for a dimension of size 3");
    let e = err(iten(&[-1, 0], &[2]).try_one_hot(3, DType::F32));
    assert_eq!(e, "index -1 out of range in one_hot for a dimension of size 3");
    let e = err(ten(&[0.0], &[1]).try_one_hot(3, DType::F32));
    assert_eq!(e, "invalid arguments to one_hot: indices must have dtype i32, got f64");
    let m = ten(&[1.0, 2.0, 3.0], &[3]).mse(&ten(&[1.0, 0.0, 6.0], &[3]));
    assert_eq!(tvals(&m), [13.0 / 3.0]);
}

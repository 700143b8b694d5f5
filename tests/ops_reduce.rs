//! Reductions: sum, mean, max, min, var over any set of axes with and without keepdim,
//! argmax/argmin. Gradients against finite differences on strided inputs (max/min on
//! tie-free values); forwards against a reference that groups elements by index.

mod common;

use common::*;
use plies::autodiff::{AllAxes, DType, Tensor};
use proptest::collection::vec;
use proptest::prelude::*;

/// Which axes a reduction covers, as given to the op (maybe negative) and resolved.
#[derive(Clone, Debug)]
struct AxesArg {
    given: Vec<i64>,
    resolved: Vec<usize>,
}

fn axes_arg(rank: usize, mask: &[bool], negative: bool) -> AxesArg {
    let resolved: Vec<usize> = (0..rank).filter(|&i| mask[i]).collect();
    let given = resolved.iter().rev().map(|&a| if negative { a as i64 - rank as i64 } else { a as i64 }).collect();
    AxesArg { given, resolved }
}

/// The input's elements grouped by output position (reduced axes collapsed), each group in
/// row-major order, and the output dims with and without keepdim.
fn groups(values: &[f64], dims: &[usize], axes: &[usize]) -> (Vec<Vec<f64>>, Vec<usize>, Vec<usize>) {
    let kept: Vec<usize> = dims.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
    let dropped: Vec<usize> = dims.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect();
    let mut g = vec![Vec::new(); count(&kept)];
    for (i, &v) in values.iter().enumerate() {
        let mut idx = unravel(i, dims);
        for &a in axes {
            idx[a] = 0;
        }
        g[ravel(&idx, &kept)].push(v);
    }
    (g, kept, dropped)
}

fn sum(g: &[f64]) -> f64 {
    g.iter().sum()
}

fn var(g: &[f64], correction: usize) -> f64 {
    let m = sum(g) / g.len() as f64;
    g.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (g.len() as f64 - correction as f64)
}

fn reduce_case(allow_broadcast: bool) -> BoxedStrategy<(Source, AxesArg, bool)> {
    (any_source(0..=4, allow_broadcast), vec(any::<bool>(), 4), any::<bool>(), any::<bool>())
        .prop_map(|(s, mask, neg, keepdim)| {
            let a = axes_arg(s.dims.len(), &mask, neg);
            (s, a, keepdim)
        })
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sum_mean_var_gradients((src, axes, keepdim) in reduce_case(true)) {
        let x = src.map(|u| 2.0 * u).array();
        let ax = axes.given.clone();
        gradcheck("sum", |t| t[0].try_sum(ax.as_slice(), keepdim), std::slice::from_ref(&x));
        gradcheck("mean", |t| t[0].try_mean(ax.as_slice(), keepdim), std::slice::from_ref(&x));
        let n: usize = axes.resolved.iter().map(|&a| src.dims[a]).product();
        for correction in [0, 1].into_iter().filter(|&c| c < n) {
            gradcheck("var", |t| t[0].try_var(ax.as_slice(), keepdim, correction), std::slice::from_ref(&x));
        }
    }

    #[test]
    fn max_min_gradients((src, axes, keepdim) in reduce_case(false)) {
        // Pairwise distinct values: no ties, so max and min are differentiable.
        let x = src.distinct().array();
        let ax = axes.given.clone();
        gradcheck("max", |t| t[0].try_max(ax.as_slice(), keepdim), std::slice::from_ref(&x));
        gradcheck("min", |t| t[0].try_min(ax.as_slice(), keepdim), std::slice::from_ref(&x));
    }

    #[test]
    fn reductions_match_reference((src, axes, keepdim) in reduce_case(true)) {
        let (g, kept, dropped) = groups(&src.values(), &src.dims, &axes.resolved);
        let out_dims = if keepdim { kept } else { dropped };
        let ax = axes.given.as_slice();
        let n = g[0].len();
        type Case = (&'static str, fn(&Tensor, &[i64], bool) -> Tensor, fn(&[f64]) -> f64);
        let cases: [Case; 6] = [
            ("sum", |t, a, k| t.sum(a, k), sum),
            ("mean", |t, a, k| t.mean(a, k), |g| sum(g) / g.len() as f64),
            ("max", |t, a, k| t.max(a, k), |g| g.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            ("min", |t, a, k| t.min(a, k), |g| g.iter().copied().fold(f64::INFINITY, f64::min)),
            ("var", |t, a, k| t.var(a, k, 0), |g| var(g, 0)),
            ("var unbiased", |t, a, k| t.var(a, k, 1), |g| var(g, 1)),
        ];
        for (name, op, reference) in cases {
            if name == "var unbiased" && n < 2 {
                continue;
            }
            for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
                let round = |v: &f64| if dtype == DType::F32 { *v as f32 as f64 } else { *v };
                let want: Vec<f64> = g.iter().map(|g| reference(&g.iter().map(round).collect::<Vec<_>>())).collect();
                let y = op(&Tensor::new(src.array_as(dtype)), ax, keepdim);
                assert_eq!(y.dims(), out_dims, "{name}");
                assert_eq!(y.dtype(), dtype, "{name}");
                assert_close(&tvals(&y), &want, tol);
            }
        }
        // i32 sums, max and min are exact.
        let si = src.map(|u| (5.0 * u).round());
        let (gi, _, _) = groups(&si.values(), &si.dims, &axes.resolved);
        let ti = Tensor::new(si.array_as(DType::I32));
        assert_eq!(tvals(&ti.sum(ax, keepdim)), gi.iter().map(|g| sum(g)).collect::<Vec<_>>());
        assert_eq!(tvals(&ti.max(ax, keepdim)), gi.iter().map(|g| g.iter().copied().fold(f64::MIN, f64::max)).collect::<Vec<_>>());
        assert_eq!(tvals(&ti.min(ax, keepdim)), gi.iter().map(|g| g.iter().copied().fold(f64::MAX, f64::min)).collect::<Vec<_>>());
    }

    #[test]
    fn argmax_argmin_match_reference(
        (src, axis, keepdim) in any_source(1..=4, true).prop_flat_map(|s| {
            let r = s.dims.len() as i64;
            (Just(s), -r..r, any::<bool>())
        })
    ) {
        // Coarse values so that ties are common: the first index wins.
        let s = src.map(|u| (2.0 * u).round());
        let a = if axis < 0 { (axis + s.dims.len() as i64) as usize } else { axis as usize };
        let (g, kept, dropped) = groups(&s.values(), &s.dims, &[a]);
        let first = |g: &Vec<f64>, better: fn(f64, f64) -> bool| {
            let mut at = 0;
            for (i, &v) in g.iter().enumerate() {
                if better(v, g[at]) {
                    at = i;
                }
            }
            at as f64
        };
        let want_max: Vec<f64> = g.iter().map(|g| first(g, |v, b| v > b)).collect();
        let want_min: Vec<f64> = g.iter().map(|g| first(g, |v, b| v < b)).collect();
        for dtype in [DType::F64, DType::F32, DType::I32] {
            let x = Tensor::new(s.array_as(dtype));
            let (ymax, ymin) = (x.argmax(axis, keepdim), x.argmin(axis, keepdim));
            assert_eq!(ymax.dtype(), DType::I32);
            assert_eq!(ymax.dims(), if keepdim { kept.clone() } else { dropped.clone() });
            assert_eq!(tvals(&ymax), want_max, "argmax {dtype}");
            assert_eq!(tvals(&ymin), want_min, "argmin {dtype}");
        }
    }
}

#[test]
fn reductions_hand_values() {
    let x = ten(&[1.0, 2.0, 3.0, 4.0, 5.0, 9.0], &[2, 3]);
    assert_eq!(tvals(&x.sum(0, false)), [5.0, 7.0, 12.0]);
    assert_eq!(tvals(&x.sum(1, false)), [6.0, 18.0]);
    assert_eq!(x.sum(1, true).dims(), [2, 1]);
    assert_eq!(x.sum([0, 1], true).dims(), [1, 1]);
    assert_eq!(tvals(&x.sum_all()), [24.0]);
    assert_eq!(x.sum_all().dims(), Vec::<usize>::new());
    assert_eq!(tvals(&x.mean(-1, false)), [2.0, 6.0]);
    assert_eq!(tvals(&x.mean_all()), [4.0]);
    assert_eq!(tvals(&x.max(1, false)), [3.0, 9.0]);
    assert_eq!(tvals(&x.min(0, false)), [1.0, 2.0, 3.0]);
    assert_eq!(tvals(&x.max(AllAxes, false)), [9.0]);
    // Unbiased: var([1, 2, 3]) = 1, var([4, 5, 9]) = 7; biased over all six (mean 4): 40/6 = 20/3.
    assert_eq!(tvals(&x.var(1, false, 1)), [1.0, 7.0]);
    assert_close(&tvals(&x.var(AllAxes, false, 0)), &[20.0 / 3.0], 1e-15);
    assert_eq!(tvals(&x.var(0, true, 1)), [4.5, 4.5, 18.0]);
    // An empty axis list reduces nothing.
    assert_eq!(tvals(&x.sum(Vec::<usize>::new(), false)), tvals(&x));
    // A rank-0 tensor reduces to itself.
    assert_eq!(tvals(&ten(&[3.5], &[]).sum(AllAxes, false)), [3.5]);
    // The first extreme index wins ties.
    let t = ten(&[1.0, 3.0, 3.0, 0.0, 0.0, -1.0], &[2, 3]);
    assert_eq!(t.argmax(1, false).to_vec::<i32>(), [1, 0]);
    assert_eq!(t.argmin(1, false).to_vec::<i32>(), [0, 2]);
    assert_eq!(t.argmax(0, true).to_vec::<i32>(), [0, 0, 0]);
    assert_eq!(t.argmax(0, true).dims(), [1, 3]);
    // One element with the unbiased correction is 0/0, as in PyTorch.
    assert!(tvals(&ten(&[2.0], &[1]).var(0, false, 1))[0].is_nan());
    // NaN propagates through max and min.
    let n = ten(&[1.0, f64::NAN, 3.0], &[3]);
    assert!(tvals(&n.max(0, false))[0].is_nan() && tvals(&n.min(0, false))[0].is_nan());
}

#[test]
fn reductions_of_empty_tensors() {
    let e = ten(&[], &[2, 0]);
    assert_eq!(tvals(&e.sum(1, false)), [0.0, 0.0]);
    assert_eq!(e.sum(0, false).dims(), [0]);
    // The mean of nothing is 0/0 (as in PyTorch); extremes of nothing are errors.
    assert!(tvals(&e.mean(1, false)).iter().all(|v| v.is_nan()));
    assert_eq!(err(e.try_max(1, false)), "invalid arguments to max: cannot reduce an empty array of shape [2, 0]");
    assert_eq!(
        err(e.try_argmin(1, false)),
        "invalid arguments to argmin: cannot reduce an empty array of shape [2, 0]"
    );
}

#[test]
fn reduction_gradient_hand_values() {
    // Tied maxima share the gradient evenly (as torch.amax).
    let x = Tensor::param(arr(&[1.0, 3.0, 3.0, 2.0], &[4]));
    x.max(0, false).backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), [0.0, 0.5, 0.5, 0.0]);
    // d mean / dx = 1/n; d var / dx = 2 (x - mean) / (n - 1).
    let x = Tensor::param(arr(&[1.0, 2.0, 6.0], &[3]));
    x.mean_all().backward().unwrap();
    assert_close(&vals(&x.grad().unwrap()), &[1.0 / 3.0; 3], 1e-15);
    x.zero_grad();
    x.var(0, false, 1).backward().unwrap();
    assert_close(&vals(&x.grad().unwrap()), &[-2.0, -1.0, 3.0], 1e-15);
}

/// Sizes past the CPU backend's parallel grain, on strided views.
#[test]
fn large_reductions_match_reference() {
    let (r, c) = (300, 200);
    let v: Vec<f64> = (0..r * c).map(|i| ((i * 7919) % 1000) as f64 / 1000.0 - 0.5).collect();
    let x = arr(&v, &[r, c]);
    let t = Tensor::new(x.t().unwrap());
    let col_sums: Vec<f64> = (0..c).map(|j| (0..r).map(|i| v[i * c + j]).sum()).collect();
    let row_max: Vec<f64> = (0..r).map(|i| v[i * c..(i + 1) * c].iter().copied().fold(f64::MIN, f64::max)).collect();
    assert_close(&tvals(&t.sum(1, false)), &col_sums, 1e-12);
    assert_close(&tvals(&t.max(0, false)), &row_max, 0.0);
    let total: f64 = v.iter().sum();
    assert_close(&tvals(&t.sum_all()), &[total], 1e-12);
    let t32 = Tensor::new(x.to_dtype(DType::F32).unwrap());
    assert_close(&tvals(&t32.sum_all()), &[total], 1e-4);
    assert_close(&tvals(&t32.sum(0, false)), &col_sums, 1e-5);
}

#[test]
fn var_with_correction_past_the_count_is_not_negative() {
    // PyTorch divides by max(0, n - correction): a positive spread over 0 is inf, never a
    // negative variance.
    let x = ten(&[1.0, 2.0], &[2]);
    assert_eq!(tvals(&x.var(0, false, 3)), [f64::INFINITY]);
    assert_eq!(tvals(&x.var(0, false, 2)), [f64::INFINITY]);
    assert_eq!(vals(&x.value().var(0, false, 3).unwrap()), [f64::INFINITY]);
}

//! Accuracy of the f32 vector kernels against f64 references, over the whole range and at
//! the edges (overflow, underflow into subnormals, infinities, NaN, signed zero).

use super::*;
use crate::cpu::elementwise::unary_f;
use std::cell::Cell;

thread_local! {
    /// Makes `has_avx2` answer false on this thread, to test the scalar fallbacks here.
    pub(super) static SCALAR_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// `f` on the scalar paths (what a CPU without AVX2 runs).
fn scalar<R>(f: impl FnOnce() -> R) -> R {
    SCALAR_ONLY.with(|s| s.set(true));
    let r = f();
    SCALAR_ONLY.with(|s| s.set(false));
    r
}

/// Distance in units in the last place between two finite f32 of any sign.
fn ulps(a: f32, b: f32) -> u64 {
    let key = |v: f32| {
        let i = v.to_bits() as i32;
        if i < 0 {
            i64::from(i32::MIN) - i64::from(i)
        } else {
            i64::from(i)
        }
    };
    key(a).abs_diff(key(b))
}

fn run(op: UnaryOp, x: &[f32]) -> Vec<f32> {
    let mut out = vec![MaybeUninit::uninit(); x.len()];
    unary_run(op, x, &mut out);
    // SAFETY: unary_run writes every element.
    out.into_iter().map(|v| unsafe { v.assume_init() }).collect()
}

fn run_grad(op: UnaryOp, x: &[f32], g: &[f32]) -> Vec<f32> {
    let mut out = vec![MaybeUninit::uninit(); x.len()];
    unary_grad_run(op, x, g, &mut out);
    // SAFETY: unary_grad_run writes every element.
    out.into_iter().map(|v| unsafe { v.assume_init() }).collect()
}

/// A dense sweep of [lo, hi] plus the values around powers of two and special values.
fn sweep(lo: f32, hi: f32, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..=n).map(|i| lo + (hi - lo) * (i as f32 / n as f32)).collect();
    for e in -30..8 {
        let p = (2f32).powi(e);
        for s in [1.0f32, -1.0] {
            v.extend([s * p, s * f32::from_bits(p.to_bits() + 1), s * f32::from_bits(p.to_bits() - 1)]);
        }
    }
    v.extend([0.0, -0.0, f32::MIN_POSITIVE, -f32::MIN_POSITIVE, 1e-40, -1e-40, 1e-45]);
    v
}

/// Relative condition number of `f` at `x`: how many ulps of output one ulp of input (or
/// of an intermediate of the size of `x`) moves. No f32 formula can beat it.
fn condition(f: &dyn Fn(f64) -> f64, x: f64) -> f64 {
    let (h, y) = (1e-7 * x.abs().max(1e-30), f(x));
    let d = (f(x + h) - f(x - h)) / (2.0 * h);
    if y == 0.0 || !d.is_finite() {
        return 0.0;
    }
    (x * d / y).abs()
}

/// Check `got` against the f64 reference rounded to f32: within `max_ulps` beyond the
/// function's conditioning, or (for results below the normal range) within `abs`.
fn check(name: &str, x: &[f32], got: &[f32], reference: impl Fn(f64) -> f64, max_ulps: u64, abs: f64) {
    let mut worst = (0u64, 0f32);
    for (&x, &y) in x.iter().zip(got) {
        let r = reference(x as f64);
        let allowed = max_ulps + condition(&reference, x as f64).ceil() as u64;
        let rf = r as f32;
        if r.is_nan() {
            assert!(y.is_nan(), "{name}({x:e}) = {y:e}, want NaN");
            continue;
        }
        if rf.is_infinite() || y.is_infinite() {
            assert_eq!(y, rf, "{name}({x:e})");
            continue;
        }
        if (y as f64 - r).abs() <= abs {
            continue;
        }
        let u = ulps(y, rf);
        if u > worst.0 {
            worst = (u, x);
        }
        assert!(u <= allowed, "{name}({x:e}) = {y:e}, reference {r:e}: {u} ulps, {allowed} allowed");
    }
    eprintln!("{name}: worst {} ulps at {:e}", worst.0, worst.1);
}

#[test]
fn exp_is_accurate_over_the_whole_range() {
    let mut x = sweep(-110.0, 95.0, 400_000);
    // The overflow threshold ln(f32::MAX) = 88.7228 and the subnormal range below -87.3.
    let edge = 88.722_84f32;
    for k in -40..40 {
        x.push(f32::from_bits((edge.to_bits() as i64 + k) as u32));
    }
    x.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -87.33, -100.0, -103.2, -104.0, -1e30, 1e30]);
    let y = run(UnaryOp::Exp, &x);
    check("exp", &x, &y, f64::exp, 2, 1.5e-45);
    assert_eq!(run(UnaryOp::Exp, &[0.0, -0.0]), [1.0, 1.0]);
    assert_eq!(run(UnaryOp::Exp, &[89.0, 1000.0, -1000.0]), [f32::INFINITY, f32::INFINITY, 0.0]);
}

#[test]
fn transcendental_ops_are_accurate() {
    let mut x = sweep(-30.0, 30.0, 200_000);
    x.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e30, -1e30, -90.0, -120.0]);
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let k = 0.797_884_560_802_865_4f64;
    // silu and gelu at -inf are -inf * 0 here, in the scalar path and in PyTorch: NaN.
    let gelu = |v: f64| if v == f64::NEG_INFINITY { f64::NAN } else { v * sig(2.0 * k * (v + 0.044_715 * v * v * v)) };
    let silu = |v: f64| if v == f64::NEG_INFINITY { f64::NAN } else { v * sig(v) };
    let cases: [(UnaryOp, &dyn Fn(f64) -> f64); 4] =
        [(UnaryOp::Tanh, &f64::tanh), (UnaryOp::Sigmoid, &sig), (UnaryOp::Silu, &silu), (UnaryOp::GeluTanh, &gelu)];
    for (op, f) in cases {
        let y = run(op, &x);
        // Results far below the normal range are flushed to 0 where the formula
        // underflows (sigmoid(-120) = 7.7e-53 in f64): allow that absolutely.
        check(op.name(), &x, &y, f, 4, 1e-37);
    }
    // Odd symmetry and signed zero.
    let zeros: Vec<u32> = run(UnaryOp::Tanh, &[0.0, -0.0]).iter().map(|v| v.to_bits()).collect();
    assert_eq!(zeros, [0.0f32.to_bits(), (-0.0f32).to_bits()]);
    assert_eq!(run(UnaryOp::Sigmoid, &[0.0, -0.0]), [0.5, 0.5]);
}

/// erfc in f64 for the reference: the series of `erf_f64` near 0, and for z >= 2 the
/// continued fraction, which keeps relative accuracy in the far tail.
fn erfc64(z: f64) -> f64 {
    if z < 2.0 {
        return 1.0 - crate::cpu::elementwise::erf_f64(z);
    }
    let mut f = z;
    for k in (1..200).rev() {
        f = z + (k as f64 / 2.0) / f;
    }
    (-z * z).exp() / std::f64::consts::PI.sqrt() / f
}

#[test]
fn exact_gelu_is_accurate() {
    let mut x = sweep(-16.0, 12.0, 200_000);
    x.extend([f32::INFINITY, f32::NAN, -13.0, -14.0, -14.5, 1e30, -1e30, 1e-30, -1e-30]);
    let phi = |v: f64| {
        let t = 0.5 * erfc64(v.abs() * std::f64::consts::FRAC_1_SQRT_2);
        if v < 0.0 {
            t
        } else {
            1.0 - t
        }
    };
    let gelu = |v: f64| if v.is_infinite() { v.max(0.0) * if v > 0.0 { 1.0 } else { f64::NAN } } else { v * phi(v) };
    check("gelu_erf", &x, &run(UnaryOp::GeluErf, &x), gelu, 6, 1e-38);
    assert!(run(UnaryOp::GeluErf, &[f32::NEG_INFINITY])[0].is_nan());
    // The gradient Phi(x) + x pdf(x) against the f64 formula.
    let xs: Vec<f32> = sweep(-14.0, 12.0, 50_000).into_iter().collect();
    let ones = vec![1.0f32; xs.len()];
    let pdf = |v: f64| (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
    for (&v, &y) in xs.iter().zip(&run_grad(UnaryOp::GeluErf, &xs, &ones)) {
        let (v, want) = (v as f64, phi(v as f64) + v as f64 * pdf(v as f64));
        // Phi + x pdf cancels for negative x (both terms ~ pdf): allow 4 ulps of the
        // larger term (and below the normal range, 1e-38 absolutely).
        let scale = phi(v).abs().max((v * pdf(v)).abs());
        assert!((y as f64 - want).abs() <= 4.0 * f32::EPSILON as f64 * scale + 1e-38, "gelu_erf'({v}) = {y} vs {want}");
    }
}

#[test]
fn gradients_match_the_scalar_derivatives() {
    // Up to 80 so that exp stays finite.
    let x: Vec<f32> = sweep(-12.0, 12.0, 20_000).into_iter().filter(|v| v.abs() < 80.0).collect();
    let g: Vec<f32> = (0..x.len()).map(|i| 1.0 - (i % 7) as f32 * 0.25).collect();
    for op in [UnaryOp::Exp, UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Silu, UnaryOp::GeluTanh, UnaryOp::GeluErf] {
        let got = run_grad(op, &x, &g);
        for ((&x, &g), &y) in x.iter().zip(&g).zip(&got) {
            let want = g as f64 * unary_df(op, x as f64);
            let scale = want.abs().max(1e-30);
            // The derivatives combine several rounded values; ask for 1e-6 relative, or
            // an absolute 1e-7 where the derivative crosses zero.
            assert!(
                ((y as f64 - want) / scale).abs() < 1e-6 || (y as f64 - want).abs() < 1e-7,
                "{op:?}'({x:e}) * {g}: {y:e} vs {want:e}"
            );
        }
    }
}

#[test]
fn vector_and_scalar_paths_agree_on_every_op() {
    // All ops through unary_run (vector where available) against the scalar f32 op,
    // which for GELU loses digits to 1 + tanh for negative x: compare absolutely.
    let mut x: Vec<f32> = (0..1003).map(|i| (i as f32 - 501.0) * 0.013).collect();
    x.extend([f32::NAN, -0.0, 0.0, 0.3, f32::INFINITY, f32::NEG_INFINITY]);
    let ops = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Sqr,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Relu,
        UnaryOp::GeluTanh,
        UnaryOp::GeluErf,
        UnaryOp::Silu,
        UnaryOp::Affine { mul: 1.5, add: -2.0 },
        UnaryOp::MaxScalar(0.3),
        UnaryOp::MinScalar(0.3),
    ];
    for op in ops {
        for (len, (&v, &y)) in x.iter().zip(&run(op, &x)).enumerate() {
            let want = unary_f(op, v);
            let same = y.to_bits() == want.to_bits() || (y.is_nan() && want.is_nan());
            assert!(same || (y - want).abs() <= 1e-6 * want.abs().max(1.0), "{op:?}({v}) = {y} vs {want} (at {len})");
        }
    }
}

#[test]
fn row_kernels_match_scalar_sums() {
    for n in [0usize, 1, 7, 8, 15, 16, 17, 100, 1000] {
        let x: Vec<f32> = (0..n).map(|i| ((i * 37) % 23) as f32 * 0.7 - 5.0).collect();
        let shift = 3.0f32;
        let want: f64 = x.iter().map(|&v| (v as f64 - shift as f64).exp()).sum();
        let mut out = vec![MaybeUninit::uninit(); n];
        let s = f32::exp_shift(&x, shift, &mut out);
        assert!((s as f64 - want).abs() <= 1e-6 * want.max(1.0), "exp_shift sum {s} vs {want} (n {n})");
        for (o, &v) in out.iter().zip(&x) {
            // SAFETY: exp_shift wrote every element.
            let o = unsafe { o.assume_init() };
            assert!(ulps(o, ((v - shift) as f64).exp() as f32) <= 2);
        }
        let s2 = f32::sum_exp_shift(&x, shift);
        assert!((s2 as f64 - want).abs() <= 1e-6 * want.max(1.0), "sum_exp_shift {s2} vs {want} (n {n})");
    }
}

#[test]
fn fold_lanes_matches_a_plain_fold() {
    for n in [0usize, 1, 15, 16, 17, 33, 1000] {
        let x: Vec<f64> = (0..n).map(|i| (i as f64).sin()).collect();
        let s = fold_lanes(&x, 0.0, |a, v| a + v, |a, b| a + b);
        assert!((s - x.iter().sum::<f64>()).abs() < 1e-12);
        let m = fold_lanes(&x, f64::NEG_INFINITY, f64::max, f64::max);
        assert_eq!(m, x.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    }
}

#[test]
fn row_sum_max_min_in_f32() {
    for n in [0usize, 1, 7, 8, 31, 32, 33, 100, 1024] {
        let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 101) as f32 * 0.25 - 12.0).collect();
        let sum: f64 = x.iter().map(|&v| v as f64).sum();
        assert!((f32::sum_row(&x) as f64 - sum).abs() <= 1e-6 * (1.0 + sum.abs()), "sum n {n}");
        assert_eq!(f32::max_row(&x), x.iter().copied().fold(f32::NEG_INFINITY, f32::max), "max n {n}");
        assert_eq!(f32::min_row(&x), x.iter().copied().fold(f32::INFINITY, f32::min), "min n {n}");
        for at in [0, n / 2, n.saturating_sub(1)] {
            if n == 0 {
                continue;
            }
            let mut y = x.clone();
            y[at] = f32::NAN;
            assert!(f32::max_row(&y).is_nan() && f32::min_row(&y).is_nan(), "NaN at {at} of {n}");
            y[at] = f32::INFINITY;
            assert_eq!(f32::max_row(&y), f32::INFINITY);
            y[at] = f32::NEG_INFINITY;
            assert_eq!(f32::min_row(&y), f32::NEG_INFINITY);
        }
    }
}

#[test]
fn scalar_fallbacks_agree_with_the_vector_paths() {
    let x: Vec<f32> = (0..2001).map(|i| (i as f32 - 1000.0) * 0.011).collect();
    let g: Vec<f32> = (0..x.len()).map(|i| 1.0 - (i % 5) as f32 * 0.3).collect();
    let near = |a: f32, b: f32| (a - b).abs() <= 2e-6 * a.abs().max(1.0);
    for op in [UnaryOp::Exp, UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Silu, UnaryOp::GeluTanh, UnaryOp::GeluErf] {
        let (v, s) = (run(op, &x), scalar(|| run(op, &x)));
        assert!(v.iter().zip(&s).all(|(&a, &b)| near(a, b)), "{op:?}");
        let (v, s) = (run_grad(op, &x, &g), scalar(|| run_grad(op, &x, &g)));
        assert!(v.iter().zip(&s).all(|(&a, &b)| near(a, b)), "{op:?} grad");
    }
    let mut out = vec![MaybeUninit::uninit(); x.len()];
    let (vs, ss) = (f32::exp_shift(&x, 2.0, &mut out), scalar(|| f32::exp_shift(&x, 2.0, &mut out)));
    assert!((vs - ss).abs() <= 1e-5 * vs);
    assert!((f32::sum_exp_shift(&x, 2.0) - scalar(|| f32::sum_exp_shift(&x, 2.0))).abs() <= 1e-5 * vs);
    assert!((f32::sum_row(&x) - scalar(|| f32::sum_row(&x))).abs() <= 1e-4);
    assert_eq!(f32::max_row(&x), scalar(|| f32::max_row(&x)));
    assert_eq!(f32::min_row(&x), scalar(|| f32::min_row(&x)));
    let mut y = x.clone();
    y[7] = f32::NAN;
    assert!(scalar(|| f32::max_row(&y)).is_nan() && scalar(|| f32::min_row(&y)).is_nan());
}

#[test]
fn dot_and_squared_deviations_in_f32() {
    for n in [0usize, 1, 7, 8, 15, 16, 31, 32, 33, 100, 1031] {
        let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 101) as f32 * 0.25 - 12.0).collect();
        let y: Vec<f32> = (0..n).map(|i| ((i * 104729) % 37) as f32 * 0.5 - 9.0).collect();
        let dot: f64 = x.iter().zip(&y).map(|(&a, &b)| a as f64 * b as f64).sum();
        let scale: f64 = x.iter().zip(&y).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum();
        assert!((f32::dot(&x, &y) as f64 - dot).abs() <= 1e-6 * (1.0 + scale), "dot n {n}");
        assert!((scalar(|| f32::dot(&x, &y)) as f64 - dot).abs() <= 1e-6 * (1.0 + scale), "scalar dot n {n}");
        let c = 1.5f32;
        let sq: f64 = x.iter().map(|&v| (v as f64 - 1.5).powi(2)).sum();
        assert!((f32::sum_sq_diff(&x, c) as f64 - sq).abs() <= 1e-6 * (1.0 + sq), "sum_sq_diff n {n}");
        assert!((scalar(|| f32::sum_sq_diff(&x, c)) as f64 - sq).abs() <= 1e-6 * (1.0 + sq));
    }
}

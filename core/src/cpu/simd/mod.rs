//! Kernels that plain loops do not vectorise (well) on a baseline x86-64 build: exp and
//! the ops built on it, and row sums, maxima and minima. `f32` takes an AVX2 + FMA path
//! when the CPU has one (checked at run time); `f64` (used by the gradient checks) and
//! CPUs without AVX2 take the scalar path through `std`.
//!
//! Also `fold_lanes`, which spreads a fold over independent lanes so that LLVM can keep
//! them in vector registers (a single accumulator would serialise on the add latency),
//! and `unary_run`, which gives each cheap unary op a loop of its own.

#[cfg(target_arch = "x86_64")]
mod avx2;

use super::elementwise::{unary_df, unary_f};
use crate::{FloatElement, UnaryOp};
use std::mem::MaybeUninit;

/// True when the f32 vector kernels can run here.
#[inline]
pub(crate) fn has_avx2() -> bool {
    #[cfg(test)]
    if tests::SCALAR_ONLY.with(|s| s.get()) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // std caches the CPUID answer; this is one atomic load.
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A float type with the row kernels of the fused ops and the transcendental elementwise
/// ops. The provided methods are the scalar versions.
pub(crate) trait VecMath: FloatElement {
    /// Write `f(x)` for unary `op`; false (nothing written) when there is no vector kernel.
    fn unary_vec(_op: UnaryOp, _x: &[Self], _out: &mut [MaybeUninit<Self>]) -> bool {
        false
    }

    /// Write `g * f'(x)`; false (nothing written) when there is no vector kernel.
    fn unary_grad_vec(_op: UnaryOp, _x: &[Self], _g: &[Self], _out: &mut [MaybeUninit<Self>]) -> bool {
        false
    }

    /// `out = exp(x - shift)`; returns the sum of `out`.
    fn exp_shift(x: &[Self], shift: Self, out: &mut [MaybeUninit<Self>]) -> Self {
        let mut sum = Self::zero();
        for (o, &v) in out.iter_mut().zip(x) {
            let e = (v - shift).exp();
            o.write(e);
            sum = sum + e;
        }
        sum
    }

    /// The sum of `exp(x - shift)`.
    fn sum_exp_shift(x: &[Self], shift: Self) -> Self {
        fold_lanes(x, Self::zero(), |a, v| a + (v - shift).exp(), |a, b| a + b)
    }

    /// The sum of a row, over independent lanes (callers split long rows pairwise).
    fn sum_row(x: &[Self]) -> Self {
        fold_lanes(x, Self::zero(), |a, v| a + v, |a, b| a + b)
    }

    /// The dot product of two equally long rows.
    fn dot(a: &[Self], b: &[Self]) -> Self {
        dot_lanes(a, b)
    }

    /// The sum of `(x - c)^2` over a row (a variance's numerator).
    fn sum_sq_diff(x: &[Self], c: Self) -> Self {
        fold_lanes(x, Self::zero(), |a, v| a + (v - c) * (v - c), |a, b| a + b)
    }

    /// The largest element; NaN if there is one; -inf for an empty row.
    fn max_row(x: &[Self]) -> Self {
        fold_lanes(x, Self::neg_infinity(), max_nan, max_nan)
    }

    /// The smallest element; NaN if there is one; +inf for an empty row.
    fn min_row(x: &[Self]) -> Self {
        fold_lanes(x, Self::infinity(), min_nan, min_nan)
    }
}

/// max that propagates NaN (like PyTorch's amax).
#[inline(always)]
pub(crate) fn max_nan<T: FloatElement>(acc: T, v: T) -> T {
    if v > acc || v.is_nan() {
        v
    } else {
        acc
    }
}

/// min that propagates NaN.
#[inline(always)]
pub(crate) fn min_nan<T: FloatElement>(acc: T, v: T) -> T {
    if v < acc || v.is_nan() {
        v
    } else {
        acc
    }
}

impl VecMath for f64 {}

impl VecMath for f32 {
    fn unary_vec(op: UnaryOp, x: &[f32], out: &mut [MaybeUninit<f32>]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if avx2::has_kernel(op) && has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { avx2::unary(op, x, out) };
            return true;
        }
        let _ = (op, x, out);
        false
    }

    fn unary_grad_vec(op: UnaryOp, x: &[f32], g: &[f32], out: &mut [MaybeUninit<f32>]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if avx2::has_kernel(op) && has_avx2() {
            // SAFETY: as above.
            unsafe { avx2::unary_grad(op, x, g, out) };
            return true;
        }
        let _ = (op, x, g, out);
        false
    }

    fn exp_shift(x: &[f32], shift: f32, out: &mut [MaybeUninit<f32>]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: as above.
            return unsafe { avx2::exp_shift(x, shift, out) };
        }
        let mut sum = 0.0;
        for (o, &v) in out.iter_mut().zip(x) {
            let e = (v - shift).exp();
            o.write(e);
            sum += e;
        }
        sum
    }

    fn sum_exp_shift(x: &[f32], shift: f32) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: as above.
            return unsafe { avx2::sum_exp_shift(x, shift) };
        }
        fold_lanes(x, 0.0, |a, v| a + (v - shift).exp(), |a, b| a + b)
    }

    fn sum_row(x: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: as above.
            return unsafe { avx2::sum(x) };
        }
        fold_lanes(x, 0.0, |a, v| a + v, |a, b| a + b)
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: as above.
            return unsafe { avx2::dot(a, b) };
        }
        dot_lanes(a, b)
    }

    fn sum_sq_diff(x: &[f32], c: f32) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: as above.
            return unsafe { avx2::sum_sq_diff(x, c) };
        }
        fold_lanes(x, 0.0, |a, v| a + (v - c) * (v - c), |a, b| a + b)
    }

    fn max_row(x: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: as above.
            return unsafe { avx2::max(x) };
        }
        fold_lanes(x, f32::NEG_INFINITY, max_nan, max_nan)
    }

    fn min_row(x: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: as above.
            return unsafe { avx2::min(x) };
        }
        fold_lanes(x, f32::INFINITY, min_nan, min_nan)
    }
}

/// Write `f(v)` for each element of a run.
#[inline(always)]
fn each<T: Copy>(x: &[T], out: &mut [MaybeUninit<T>], f: impl Fn(T) -> T) {
    for (o, &v) in out.iter_mut().zip(x) {
        o.write(f(v));
    }
}

/// Write `g * df(v)` for each element of a run.
#[inline(always)]
fn each_grad<T: FloatElement>(x: &[T], g: &[T], out: &mut [MaybeUninit<T>], df: impl Fn(T) -> T) {
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(g) {
        o.write(g * df(v));
    }
}

/// `f(x)` for a unary op over a contiguous run: the vector kernel when there is one,
/// else a loop of its own for each cheap op (written out, so LLVM vectorises it rather
/// than calling the general `unary_f` per element), and `unary_f` for the rest.
pub(crate) fn unary_run<T: VecMath>(op: UnaryOp, x: &[T], out: &mut [MaybeUninit<T>]) {
    if T::unary_vec(op, x, out) {
        return;
    }
    let (zero, one) = (T::zero(), T::one());
    match op {
        UnaryOp::Neg => each(x, out, |v| -v),
        UnaryOp::Abs => each(x, out, |v| v.abs()),
        UnaryOp::Sqr => each(x, out, |v| v * v),
        UnaryOp::Sqrt => each(x, out, |v| v.sqrt()),
        UnaryOp::Recip => each(x, out, |v| one / v),
        UnaryOp::Rsqrt => each(x, out, |v| one / v.sqrt()),
        // As in `unary_f`: the comparisons let NaN fall through to `v`.
        UnaryOp::Relu => each(x, out, |v| if v <= zero { zero } else { v }),
        UnaryOp::Affine { mul, add } => {
            let (m, a) = (T::from_f64(mul), T::from_f64(add));
            each(x, out, |v| v * m + a)
        }
        UnaryOp::MaxScalar(c) => {
            let c = T::from_f64(c);
            each(x, out, |v| if v < c { c } else { v })
        }
        UnaryOp::MinScalar(c) => {
            let c = T::from_f64(c);
            each(x, out, |v| if v > c { c } else { v })
        }
        _ => each(x, out, |v| unary_f(op, v)),
    }
}

/// `g * f'(x)` over contiguous runs, with the same split as `unary_run`.
pub(crate) fn unary_grad_run<T: VecMath>(op: UnaryOp, x: &[T], g: &[T], out: &mut [MaybeUninit<T>]) {
    if T::unary_grad_vec(op, x, g, out) {
        return;
    }
    let (zero, one) = (T::zero(), T::one());
    match op {
        UnaryOp::Sqr => each_grad(x, g, out, |v| v + v),
        UnaryOp::Relu => each_grad(x, g, out, |v| if v > zero { one } else { zero }),
        UnaryOp::Affine { mul, .. } => {
            let m = T::from_f64(mul);
            each_grad(x, g, out, |_| m)
        }
        UnaryOp::MaxScalar(c) => {
            let c = T::from_f64(c);
            each_grad(x, g, out, |v| if v > c { one } else { zero })
        }
        UnaryOp::MinScalar(c) => {
            let c = T::from_f64(c);
            each_grad(x, g, out, |v| if v < c { one } else { zero })
        }
        _ => each_grad(x, g, out, |v| unary_df(op, v)),
    }
}

/// Lanes of `fold_lanes`: 16 f32 fill four SSE or two AVX registers.
const LANES: usize = 16;

/// Fold `x` with `step` over `LANES` independent accumulators started at `init`, then
/// merge them pairwise with `merge`. For sums this also bounds rounding error growth.
#[inline]
pub(crate) fn fold_lanes<T: Copy>(x: &[T], init: T, step: impl Fn(T, T) -> T, merge: impl Fn(T, T) -> T) -> T {
    let mut acc = [init; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..LANES {
            acc[k] = step(acc[k], c[k]);
        }
    }
    for (k, &v) in rest.iter().enumerate() {
        acc[k] = step(acc[k], v);
    }
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for k in 0..w {
            acc[k] = merge(acc[k], acc[k + w]);
        }
    }
    acc[0]
}

/// The dot product of two equally long slices over `LANES` lanes.
pub(crate) fn dot_lanes<T: FloatElement>(a: &[T], b: &[T]) -> T {
    assert_eq!(a.len(), b.len());
    let mut acc = [T::zero(); LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..LANES {
            acc[k] = acc[k] + x[k] * y[k];
        }
    }
    for (k, (&x, &y)) in ra.iter().zip(rb).enumerate() {
        acc[k] = acc[k] + x * y;
    }
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for k in 0..w {
            acc[k] = acc[k] + acc[k + w];
        }
    }
    acc[0]
}

/// The elements of a run after every one of them was written.
///
/// # Safety
/// Every element of `s` must be initialised.
pub(crate) unsafe fn assume_init<T>(s: &mut [MaybeUninit<T>]) -> &mut [T] {
    // SAFETY: MaybeUninit<T> has T's layout; the caller guarantees initialisation.
    unsafe { &mut *(s as *mut [MaybeUninit<T>] as *mut [T]) }
}

#[cfg(test)]
mod tests;

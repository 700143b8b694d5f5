//! AVX2 + FMA kernels for f32, eight lanes at a time. Callers check for the features at
//! run time (`super::has_avx2`), so the crate needs no `target-cpu` flag.
//!
//! exp: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two f32 so r keeps its low bits),
//! expm1(r) by its Taylor polynomial to r^7 (truncation below 0.3 ulp on that interval),
//! then a scale by 2^n done as two power-of-two factors so results that are subnormal or
//! overflow still round once. tanh goes through expm1 so it keeps full relative accuracy
//! near zero; sigmoid uses exp(-|x|) so neither tail cancels or overflows. Exact GELU
//! goes through the normal tail erfc(|x| / sqrt 2) / 2 (see `ERFC_P`).

use crate::UnaryOp;
use std::arch::x86_64::*;
use std::mem::MaybeUninit;

/// ln 2 as the nearest f32 plus the f32 nearest to what that leaves out.
const LN2_HI: f32 = std::f32::consts::LN_2;
const LN2_LO: f32 = -1.904_654_3e-9;
/// erfc(z) = t exp(-z^2 + P(u)) with t = 2 / (2 + z) and u mapping t in [T_MIN, 1] onto
/// [-1, 1]: P is a degree-10 Chebyshev interpolant of ln(erfc(z) / t) + z^2 (fitted here
/// with mpmath; its error is below 1.4e-8, so erfc keeps full relative accuracy) for
/// 0 <= z <= 2 / T_MIN - 2 = 11.3, past where erfc(z) / 2 underflows f32.
const ERFC_T_MIN: f32 = 0.15;
const ERFC_P: [f32; 11] = [
    -2.730_395_9e-5,
    6.976_295e-5,
    1.394_691_6e-4,
    -6.342_764e-4,
    -2.249_958_6e-4,
    4.123_369e-3,
    -1.534_448_9e-3,
    -3.116_926_4e-2,
    1.821_785_8e-2,
    5.810_348e-1,
    -5.699_95e-1,
];
/// 1 / sqrt(2 pi).
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// GELU's tanh-approximation constants (core's `GELU_TANH_K`, `GELU_TANH_C`) in f32.
const GELU_K: f32 = crate::GELU_TANH_K as f32;
const GELU_C: f32 = crate::GELU_TANH_C as f32;

#[inline(always)]
fn splat(v: f32) -> __m256 {
    // SAFETY: AVX is implied by every caller's target features.
    unsafe { _mm256_set1_ps(v) }
}

/// 2^n for integer lanes n in [-126, 127].
#[target_feature(enable = "avx2,fma")]
#[inline]
fn pow2i(n: __m256i) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n, _mm256_set1_epi32(127))))
}

/// Split x into n (rounded x / ln2, as float) and expm1(x - n ln2).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn reduce(x: __m256) -> (__m256, __m256) {
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        splat(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, splat(LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, splat(LN2_LO), r);
    let mut q = splat(1.0 / 5040.0);
    q = _mm256_fmadd_ps(q, r, splat(1.0 / 720.0));
    q = _mm256_fmadd_ps(q, r, splat(1.0 / 120.0));
    q = _mm256_fmadd_ps(q, r, splat(1.0 / 24.0));
    q = _mm256_fmadd_ps(q, r, splat(1.0 / 6.0));
    q = _mm256_fmadd_ps(q, r, splat(0.5));
    (n, _mm256_fmadd_ps(q, _mm256_mul_ps(r, r), r))
}

#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) fn exp(x: __m256) -> __m256 {
    // Outside [-104, 89] exp is 0 or inf in f32; the clamp keeps n within two normal
    // factors. max/min return their second operand on NaN, so NaN passes through.
    let x = _mm256_min_ps(splat(89.0), _mm256_max_ps(splat(-104.0), x));
    let (n, p) = reduce(x);
    let y = _mm256_add_ps(p, splat(1.0));
    let n = _mm256_cvtps_epi32(n);
    let n1 = _mm256_srai_epi32::<1>(n);
    let n2 = _mm256_sub_epi32(n, n1);
    _mm256_mul_ps(_mm256_mul_ps(y, pow2i(n1)), pow2i(n2))
}

/// expm1(t) for t <= 0.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn expm1_neg(t: __m256) -> __m256 {
    // Below -20, expm1 is -1 to f32 precision.
    let t = _mm256_max_ps(splat(-20.0), t);
    let (n, p) = reduce(t);
    let s = pow2i(_mm256_cvtps_epi32(n));
    // 2^n (1 + p) - 1 = 2^n p + (2^n - 1); exact for n = 0, no cancellation otherwise.
    _mm256_fmadd_ps(s, p, _mm256_sub_ps(s, splat(1.0)))
}

#[target_feature(enable = "avx2,fma")]
#[inline]
fn sign_bit() -> __m256 {
    splat(-0.0)
}

#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) fn tanh(x: __m256) -> __m256 {
    let sign = _mm256_and_ps(x, sign_bit());
    let ax = _mm256_andnot_ps(sign_bit(), x);
    // tanh|x| = -expm1(-2|x|) / (2 + expm1(-2|x|))
    let e = expm1_neg(_mm256_mul_ps(ax, splat(-2.0)));
    let t = _mm256_div_ps(_mm256_sub_ps(_mm256_setzero_ps(), e), _mm256_add_ps(e, splat(2.0)));
    _mm256_or_ps(_mm256_andnot_ps(sign_bit(), t), sign)
}

/// (sigmoid(x), 1 - sigmoid(x)), both to full relative accuracy: with e = exp(-|x|) <= 1,
/// they are 1 / (1 + e) and e / (1 + e), in the order the sign of x picks.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn sigmoid_pair(x: __m256) -> (__m256, __m256) {
    let e = exp(_mm256_or_ps(x, sign_bit()));
    let big = _mm256_div_ps(splat(1.0), _mm256_add_ps(splat(1.0), e));
    let small = _mm256_mul_ps(e, big);
    (_mm256_blendv_ps(big, small, x), _mm256_blendv_ps(small, big, x))
}

#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) fn sigmoid(x: __m256) -> __m256 {
    sigmoid_pair(x).0
}

/// GELU's pre-activation u = 2 sqrt(2/pi) (x + c x^3): the gate (1 + tanh(u/2)) / 2 is
/// sigmoid(u), which has no cancellation for negative x.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn gelu_u(x: __m256) -> __m256 {
    _mm256_mul_ps(x, _mm256_fmadd_ps(splat(2.0 * GELU_K * GELU_C), _mm256_mul_ps(x, x), splat(2.0 * GELU_K)))
}

/// x^2 / 2 as an unevaluated sum hi + lo (exact: FMA recovers the product's rounding).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn half_square(x: __m256) -> (__m256, __m256) {
    let h = _mm256_mul_ps(x, x);
    let l = _mm256_fmsub_ps(x, x, h);
    (_mm256_mul_ps(h, splat(0.5)), _mm256_mul_ps(l, splat(0.5)))
}

/// Phi(-|x|) = erfc(|x| / sqrt 2) / 2, the normal distribution's lower tail, to full
/// relative accuracy however far out: the exponent -x^2/2 + P is carried in two parts so
/// that its rounding does not turn into relative error of the result.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn normal_tail(x: __m256) -> __m256 {
    // Beyond |x| = 20 the tail is 0 in f32; the clamp keeps x^2 finite (NaN passes).
    let ax = _mm256_min_ps(splat(20.0), _mm256_andnot_ps(sign_bit(), x));
    let z = _mm256_min_ps(splat(10.5), _mm256_mul_ps(ax, splat(std::f32::consts::FRAC_1_SQRT_2)));
    let t = _mm256_div_ps(splat(2.0), _mm256_add_ps(splat(2.0), z));
    let scale = 2.0 / (1.0 - ERFC_T_MIN);
    let u = _mm256_fmsub_ps(t, splat(scale), splat((1.0 + ERFC_T_MIN) / (1.0 - ERFC_T_MIN)));
    let mut p = splat(ERFC_P[0]);
    for &c in &ERFC_P[1..] {
        p = _mm256_fmadd_ps(p, u, splat(c));
    }
    // Past z = 10.5 (|x| > 14.8) the clamp keeps P in range; x^2 / 2 alone then drives
    // the result to 0, as it should.
    let (h, l) = half_square(ax);
    let q = _mm256_sub_ps(p, l);
    let s = _mm256_sub_ps(q, h);
    // s = q - h rounded; c is what the rounding lost (exact while h dominates q).
    let c = _mm256_sub_ps(q, _mm256_add_ps(s, h));
    let e = exp(s);
    _mm256_mul_ps(_mm256_mul_ps(splat(0.5), t), _mm256_fmadd_ps(e, c, e))
}

/// (Phi(x), 1 - Phi(x)), the normal CDF and its complement.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn normal_cdf_pair(x: __m256) -> (__m256, __m256) {
    let tail = normal_tail(x);
    let body = _mm256_sub_ps(splat(1.0), tail);
    (_mm256_blendv_ps(body, tail, x), _mm256_blendv_ps(tail, body, x))
}

/// The normal density exp(-x^2 / 2) / sqrt(2 pi).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn normal_pdf(x: __m256) -> __m256 {
    let (h, l) = half_square(x);
    let e = exp(_mm256_sub_ps(_mm256_setzero_ps(), h));
    _mm256_mul_ps(_mm256_fnmadd_ps(e, l, e), splat(FRAC_1_SQRT_2PI))
}

/// f(x) for the ops with a vector kernel here.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn apply(op: UnaryOp, x: __m256) -> __m256 {
    match op {
        UnaryOp::Exp => exp(x),
        UnaryOp::Tanh => tanh(x),
        UnaryOp::Sigmoid => sigmoid(x),
        UnaryOp::Silu => _mm256_mul_ps(x, sigmoid(x)),
        UnaryOp::GeluTanh => _mm256_mul_ps(x, sigmoid(gelu_u(x))),
        UnaryOp::GeluErf => _mm256_mul_ps(x, normal_cdf_pair(x).0),
        _ => unreachable!("no vector kernel for {op:?}"),
    }
}

/// g * f'(x).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn apply_grad(op: UnaryOp, x: __m256, g: __m256) -> __m256 {
    // Derivatives from (s, 1 - s) pairs, so none cancels where the function saturates.
    let one = splat(1.0);
    let df = match op {
        UnaryOp::Exp => exp(x),
        UnaryOp::Tanh => {
            // 1 - tanh(x)^2 = 4 s (1 - s) with s = sigmoid(2x)
            let (s, c) = sigmoid_pair(_mm256_add_ps(x, x));
            _mm256_mul_ps(splat(4.0), _mm256_mul_ps(s, c))
        }
        UnaryOp::Sigmoid => {
            let (s, c) = sigmoid_pair(x);
            _mm256_mul_ps(s, c)
        }
        UnaryOp::Silu => {
            // s (1 + x (1 - s))
            let (s, c) = sigmoid_pair(x);
            _mm256_mul_ps(s, _mm256_fmadd_ps(x, c, one))
        }
        UnaryOp::GeluTanh => {
            // d/dx x s(u) = s + x s (1 - s) u', u' = 2k (1 + 3c x^2)
            let (s, c) = sigmoid_pair(gelu_u(x));
            let du = _mm256_fmadd_ps(splat(6.0 * GELU_K * GELU_C), _mm256_mul_ps(x, x), splat(2.0 * GELU_K));
            _mm256_fmadd_ps(_mm256_mul_ps(x, _mm256_mul_ps(s, c)), du, s)
        }
        // d/dx x Phi(x) = Phi(x) + x pdf(x)
        UnaryOp::GeluErf => _mm256_fmadd_ps(x, normal_pdf(x), normal_cdf_pair(x).0),
        _ => unreachable!("no vector kernel for {op:?}"),
    };
    _mm256_mul_ps(g, df)
}

pub(super) fn has_kernel(op: UnaryOp) -> bool {
    matches!(op, UnaryOp::Exp | UnaryOp::Tanh | UnaryOp::Sigmoid | UnaryOp::Silu | UnaryOp::GeluTanh | UnaryOp::GeluErf)
}

/// Load up to 8 lanes from `x` (the rest zero).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn load_tail(x: &[f32]) -> __m256 {
    let mut buf = [0f32; 8];
    buf[..x.len()].copy_from_slice(x);
    // SAFETY: buf holds 8 floats.
    unsafe { _mm256_loadu_ps(buf.as_ptr()) }
}

#[target_feature(enable = "avx2,fma")]
#[inline]
fn store_tail(out: &mut [MaybeUninit<f32>], v: __m256) {
    let mut buf = [0f32; 8];
    // SAFETY: buf holds 8 floats.
    unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), v) };
    for (o, &b) in out.iter_mut().zip(&buf) {
        o.write(b);
    }
}

/// Apply `f` to `x` eight lanes at a time, writing `out` (same length).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn map(x: &[f32], out: &mut [MaybeUninit<f32>], f: impl Fn(__m256) -> __m256) {
    assert_eq!(x.len(), out.len());
    let main = x.len() / 8 * 8;
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr() as *mut f32);
    for i in (0..main).step_by(8) {
        // SAFETY: i + 8 <= main <= len of both slices.
        unsafe { _mm256_storeu_ps(op.add(i), f(_mm256_loadu_ps(xp.add(i)))) };
    }
    if main < x.len() {
        store_tail(&mut out[main..], f(load_tail(&x[main..])));
    }
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn unary(op: UnaryOp, x: &[f32], out: &mut [MaybeUninit<f32>]) {
    // One match per run; each arm's loop is specialised for its op.
    match op {
        UnaryOp::Exp => map(x, out, |v| apply(UnaryOp::Exp, v)),
        UnaryOp::Tanh => map(x, out, |v| apply(UnaryOp::Tanh, v)),
        UnaryOp::Sigmoid => map(x, out, |v| apply(UnaryOp::Sigmoid, v)),
        UnaryOp::Silu => map(x, out, |v| apply(UnaryOp::Silu, v)),
        UnaryOp::GeluTanh => map(x, out, |v| apply(UnaryOp::GeluTanh, v)),
        UnaryOp::GeluErf => map(x, out, |v| apply(UnaryOp::GeluErf, v)),
        _ => unreachable!("no vector kernel for {op:?}"),
    }
}

#[target_feature(enable = "avx2,fma")]
fn map2(x: &[f32], g: &[f32], out: &mut [MaybeUninit<f32>], f: impl Fn(__m256, __m256) -> __m256) {
    assert!(x.len() == out.len() && g.len() == out.len());
    let main = x.len() / 8 * 8;
    let (xp, gp, op) = (x.as_ptr(), g.as_ptr(), out.as_mut_ptr() as *mut f32);
    for i in (0..main).step_by(8) {
        // SAFETY: i + 8 <= main <= len of all three slices.
        unsafe { _mm256_storeu_ps(op.add(i), f(_mm256_loadu_ps(xp.add(i)), _mm256_loadu_ps(gp.add(i)))) };
    }
    if main < x.len() {
        store_tail(&mut out[main..], f(load_tail(&x[main..]), load_tail(&g[main..])));
    }
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn unary_grad(op: UnaryOp, x: &[f32], g: &[f32], out: &mut [MaybeUninit<f32>]) {
    match op {
        UnaryOp::Exp => map2(x, g, out, |x, g| apply_grad(UnaryOp::Exp, x, g)),
        UnaryOp::Tanh => map2(x, g, out, |x, g| apply_grad(UnaryOp::Tanh, x, g)),
        UnaryOp::Sigmoid => map2(x, g, out, |x, g| apply_grad(UnaryOp::Sigmoid, x, g)),
        UnaryOp::Silu => map2(x, g, out, |x, g| apply_grad(UnaryOp::Silu, x, g)),
        UnaryOp::GeluTanh => map2(x, g, out, |x, g| apply_grad(UnaryOp::GeluTanh, x, g)),
        UnaryOp::GeluErf => map2(x, g, out, |x, g| apply_grad(UnaryOp::GeluErf, x, g)),
        _ => unreachable!("no vector kernel for {op:?}"),
    }
}

#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// out = exp(x - shift), returning the sum of out.
#[target_feature(enable = "avx2,fma")]
pub(super) fn exp_shift(x: &[f32], shift: f32, out: &mut [MaybeUninit<f32>]) -> f32 {
    assert_eq!(x.len(), out.len());
    let (main, sh) = (x.len() / 8 * 8, splat(shift));
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr() as *mut f32);
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 16 <= main {
        // SAFETY: i + 16 <= main <= len of both slices.
        unsafe {
            let e0 = exp(_mm256_sub_ps(_mm256_loadu_ps(xp.add(i)), sh));
            let e1 = exp(_mm256_sub_ps(_mm256_loadu_ps(xp.add(i + 8)), sh));
            _mm256_storeu_ps(op.add(i), e0);
            _mm256_storeu_ps(op.add(i + 8), e1);
            a0 = _mm256_add_ps(a0, e0);
            a1 = _mm256_add_ps(a1, e1);
        }
        i += 16;
    }
    if i < main {
        // SAFETY: i + 8 == main <= len.
        unsafe {
            let e = exp(_mm256_sub_ps(_mm256_loadu_ps(xp.add(i)), sh));
            _mm256_storeu_ps(op.add(i), e);
            a0 = _mm256_add_ps(a0, e);
        }
    }
    let mut sum = hsum(_mm256_add_ps(a0, a1));
    for (o, &v) in out[main..].iter_mut().zip(&x[main..]) {
        let e = exp_scalar(v - shift);
        o.write(e);
        sum += e;
    }
    sum
}

/// The sum of exp(x - shift).
#[target_feature(enable = "avx2,fma")]
pub(super) fn sum_exp_shift(x: &[f32], shift: f32) -> f32 {
    let (main, sh) = (x.len() / 8 * 8, splat(shift));
    let xp = x.as_ptr();
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 16 <= main {
        // SAFETY: i + 16 <= main <= len.
        unsafe {
            a0 = _mm256_add_ps(a0, exp(_mm256_sub_ps(_mm256_loadu_ps(xp.add(i)), sh)));
            a1 = _mm256_add_ps(a1, exp(_mm256_sub_ps(_mm256_loadu_ps(xp.add(i + 8)), sh)));
        }
        i += 16;
    }
    if i < main {
        // SAFETY: i + 8 == main <= len.
        a0 = _mm256_add_ps(a0, exp(_mm256_sub_ps(unsafe { _mm256_loadu_ps(xp.add(i)) }, sh)));
    }
    let mut sum = hsum(_mm256_add_ps(a0, a1));
    for &v in &x[main..] {
        sum += exp_scalar(v - shift);
    }
    sum
}

/// The vector exp on one value, so tails round exactly like the body.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn exp_scalar(x: f32) -> f32 {
    _mm256_cvtss_f32(exp(splat(x)))
}

/// Fold a row into one vector with `step`, four registers at a time; the tail is padded
/// with `pad` (the fold's identity). Also says whether any element was NaN.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn fold(x: &[f32], pad: f32, step: impl Fn(__m256, __m256) -> __m256) -> (__m256, bool) {
    let main = x.len() / 32 * 32;
    let p = x.as_ptr();
    let mut acc = [splat(pad); 4];
    let mut nan = _mm256_setzero_ps();
    for i in (0..main).step_by(32) {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 32 <= main <= len.
            let v = unsafe { _mm256_loadu_ps(p.add(i + 8 * k)) };
            nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
            *a = step(*a, v);
        }
    }
    for c in x[main..].chunks(8) {
        let mut buf = [pad; 8];
        buf[..c.len()].copy_from_slice(c);
        // SAFETY: buf holds 8 floats.
        let v = unsafe { _mm256_loadu_ps(buf.as_ptr()) };
        nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        acc[0] = step(acc[0], v);
    }
    let v = step(step(acc[0], acc[1]), step(acc[2], acc[3]));
    (v, _mm256_movemask_ps(nan) != 0)
}

/// The eight lanes of a vector.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn lanes(v: __m256) -> [f32; 8] {
    let mut out = [0f32; 8];
    // SAFETY: out holds 8 floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
    out
}

/// Sum of a row over 32 lanes (the caller splits long rows pairwise).
#[target_feature(enable = "avx2,fma")]
pub(super) fn sum(x: &[f32]) -> f32 {
    hsum(fold(x, 0.0, |a, v| _mm256_add_ps(a, v)).0)
}

/// Largest element; NaN if any element is NaN; -inf for an empty row.
#[target_feature(enable = "avx2,fma")]
pub(super) fn max(x: &[f32]) -> f32 {
    let (v, nan) = fold(x, f32::NEG_INFINITY, |a, v| _mm256_max_ps(a, v));
    if nan {
        return f32::NAN;
    }
    lanes(v).into_iter().fold(f32::NEG_INFINITY, f32::max)
}

/// Smallest element; NaN if any element is NaN; +inf for an empty row.
#[target_feature(enable = "avx2,fma")]
pub(super) fn min(x: &[f32]) -> f32 {
    let (v, nan) = fold(x, f32::INFINITY, |a, v| _mm256_min_ps(a, v));
    if nan {
        return f32::NAN;
    }
    lanes(v).into_iter().fold(f32::INFINITY, f32::min)
}

/// Sum over a row of `f(x, y)` for two equally long rows, four registers at a time; the
/// tails are padded with zeros, so `f(0, 0)` must be 0.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn sum2(x: &[f32], y: &[f32], f: impl Fn(__m256, __m256, __m256) -> __m256) -> f32 {
    assert_eq!(x.len(), y.len());
    let main = x.len() / 32 * 32;
    let (xp, yp) = (x.as_ptr(), y.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    for i in (0..main).step_by(32) {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 32 <= main <= len of both rows.
            let (u, v) = unsafe { (_mm256_loadu_ps(xp.add(i + 8 * k)), _mm256_loadu_ps(yp.add(i + 8 * k))) };
            *a = f(*a, u, v);
        }
    }
    for (cx, cy) in x[main..].chunks(8).zip(y[main..].chunks(8)) {
        acc[0] = f(acc[0], load_tail(cx), load_tail(cy));
    }
    hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])))
}

/// The dot product of two rows.
#[target_feature(enable = "avx2,fma")]
pub(super) fn dot(x: &[f32], y: &[f32]) -> f32 {
    sum2(x, y, |a, u, v| _mm256_fmadd_ps(u, v, a))
}

/// The sum of (x - c)^2 over a row.
#[target_feature(enable = "avx2,fma")]
pub(super) fn sum_sq_diff(x: &[f32], c: f32) -> f32 {
    let main = x.len() / 8 * 8;
    let cv = splat(c);
    let mut acc = [_mm256_setzero_ps(); 2];
    let p = x.as_ptr();
    let mut i = 0;
    while i + 16 <= main {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16 <= main <= len.
            let d = _mm256_sub_ps(unsafe { _mm256_loadu_ps(p.add(i + 8 * k)) }, cv);
            *a = _mm256_fmadd_ps(d, d, *a);
        }
        i += 16;
    }
    if i < main {
        // SAFETY: i + 8 == main <= len.
        let d = _mm256_sub_ps(unsafe { _mm256_loadu_ps(p.add(i)) }, cv);
        acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
    }
    let mut s = hsum(_mm256_add_ps(acc[0], acc[1]));
    for &v in &x[main..] {
        s += (v - c) * (v - c);
    }
    s
}

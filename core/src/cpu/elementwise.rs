//! Elementwise kernels: each unary op's value and derivative side by side, binary ops
//! and comparisons, and `where`.

use super::strided::map2;
use crate::{BinaryOp, FloatElement, Layout, UnaryOp, GELU_TANH_C, GELU_TANH_K};

const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

fn c<T: FloatElement>(v: f64) -> T {
    T::from_f64(v)
}

fn sigmoid<T: FloatElement>(x: T) -> T {
    // Split by sign so exp never overflows.
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// erf to about 1e-13, computed in f64: a Taylor series near 0 and a continued fraction
/// for erfc in the tails. Exact enough that finite differences in f64 agree with the
/// analytic derivative of GELU.
pub(crate) fn erf<T: FloatElement>(x: T) -> T {
    T::from_f64(erf_f64(x.as_f64()))
}

pub(crate) fn erf_f64(x: f64) -> f64 {
    let z = x.abs();
    if z < 2.5 {
        // erf(x) = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
        let (mut term, mut sum, x2) = (z, z, z * z);
        for n in 1..80 {
            term *= -x2 / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        return (2.0 * FRAC_1_SQRT_2PI * std::f64::consts::SQRT_2 * sum).copysign(x);
    }
    if z > 6.0 {
        return 1f64.copysign(x);
    }
    // erfc(z) = exp(-z^2)/sqrt(pi) * 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + ...))))
    let mut f = z;
    for k in (1..60).rev() {
        f = z + (k as f64 / 2.0) / f;
    }
    let erfc = (-z * z).exp() / std::f64::consts::PI.sqrt() / f;
    (1.0 - erfc).copysign(x)
}

/// The value of a unary op.
#[inline]
pub(crate) fn unary_f<T: FloatElement>(op: UnaryOp, x: T) -> T {
    let (zero, one, half) = (T::zero(), T::one(), c::<T>(0.5));
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sign => {
            if x > zero {
                one
            } else if x < zero {
                -one
            } else {
                zero
            }
        }
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => one / x.sqrt(),
        UnaryOp::Recip => one / x,
        UnaryOp::Sqr => x * x,
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => sigmoid(x),
        // Written so that NaN falls through to `x`: a NaN input stays NaN.
        UnaryOp::Relu => {
            if x <= zero {
                zero
            } else {
                x
            }
        }
        UnaryOp::GeluTanh => {
            let inner = c::<T>(GELU_TANH_K) * (x + c::<T>(GELU_TANH_C) * x * x * x);
            half * x * (one + inner.tanh())
        }
        UnaryOp::GeluErf => half * x * (one + erf(x * c::<T>(FRAC_1_SQRT_2))),
        UnaryOp::Silu => x * sigmoid(x),
        UnaryOp::Softplus => x.max(zero) + (-x.abs()).exp().ln_1p(),
        UnaryOp::Affine { mul, add } => x * c::<T>(mul) + c::<T>(add),
        UnaryOp::Powf(e) => x.powf(c::<T>(e)),
        UnaryOp::MaxScalar(v) => {
            let v = c::<T>(v);
            if x < v {
                v
            } else {
                x
            }
        }
        UnaryOp::MinScalar(v) => {
            let v = c::<T>(v);
            if x > v {
                v
            } else {
                x
            }
        }
    }
}

/// The derivative of a unary op at `x` (subgradient 0 at kinks, like PyTorch).
#[inline]
pub(crate) fn unary_df<T: FloatElement>(op: UnaryOp, x: T) -> T {
    let (zero, one, half) = (T::zero(), T::one(), c::<T>(0.5));
    match op {
        UnaryOp::Neg => -one,
        UnaryOp::Abs => unary_f(UnaryOp::Sign, x),
        UnaryOp::Sign => zero,
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => one / x,
        UnaryOp::Sqrt => half / x.sqrt(),
        UnaryOp::Rsqrt => -half / (x * x.sqrt()),
        UnaryOp::Recip => -one / (x * x),
        UnaryOp::Sqr => x + x,
        UnaryOp::Sin => x.cos(),
        UnaryOp::Cos => -x.sin(),
        UnaryOp::Tanh => {
            let t = x.tanh();
            one - t * t
        }
        UnaryOp::Sigmoid => {
            let s = sigmoid(x);
            s * (one - s)
        }
        UnaryOp::Relu => {
            if x > zero {
                one
            } else {
                zero
            }
        }
        UnaryOp::GeluTanh => {
            let k = c::<T>(GELU_TANH_K);
            let a = c::<T>(GELU_TANH_C);
            let t = (k * (x + a * x * x * x)).tanh();
            half * (one + t) + half * x * (one - t * t) * k * (one + c::<T>(3.0) * a * x * x)
        }
        UnaryOp::GeluErf => {
            let cdf = half * (one + erf(x * c::<T>(FRAC_1_SQRT_2)));
            let pdf = c::<T>(FRAC_1_SQRT_2PI) * (-half * x * x).exp();
            cdf + x * pdf
        }
        UnaryOp::Silu => {
            let s = sigmoid(x);
            s * (one + x * (one - s))
        }
        UnaryOp::Softplus => sigmoid(x),
        UnaryOp::Affine { mul, .. } => c::<T>(mul),
        UnaryOp::Powf(e) => c::<T>(e) * x.powf(c::<T>(e - 1.0)),
        UnaryOp::MaxScalar(v) => {
            if x > c::<T>(v) {
                one
            } else {
                zero
            }
        }
        UnaryOp::MinScalar(v) => {
            if x < c::<T>(v) {
                one
            } else {
                zero
            }
        }
    }
}

/// Binary op on floats; comparisons give 1 or 0.
#[inline]
pub(crate) fn binary_f<T: FloatElement>(op: BinaryOp, a: T, b: T) -> T {
    let bool_ = |v: bool| if v { T::one() } else { T::zero() };
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Maximum => {
            if a >= b || a.is_nan() {
                a
            } else {
                b
            }
        }
        BinaryOp::Minimum => {
            if a <= b || a.is_nan() {
                a
            } else {
                b
            }
        }
        BinaryOp::Eq => bool_(a == b),
        BinaryOp::Ne => bool_(a != b),
        BinaryOp::Lt => bool_(a < b),
        BinaryOp::Le => bool_(a <= b),
        BinaryOp::Gt => bool_(a > b),
        BinaryOp::Ge => bool_(a >= b),
    }
}

/// A binary op over two strided float views of one shape. The arithmetic ops get loops of
/// their own, written out so that LLVM vectorises them; the rest go through `binary_f`.
pub(crate) fn binary_map<T: FloatElement>(op: BinaryOp, a: &[T], la: &Layout, b: &[T], lb: &Layout) -> Vec<T> {
    match op {
        BinaryOp::Add => map2(a, la, b, lb, |x, y| x + y),
        BinaryOp::Sub => map2(a, la, b, lb, |x, y| x - y),
        BinaryOp::Mul => map2(a, la, b, lb, |x, y| x * y),
        BinaryOp::Div => map2(a, la, b, lb, |x, y| x / y),
        _ => map2(a, la, b, lb, |x, y| binary_f(op, x, y)),
    }
}

/// A binary op over two strided i32 views of one shape.
pub(crate) fn binary_map_i(op: BinaryOp, a: &[i32], la: &Layout, b: &[i32], lb: &Layout) -> Vec<i32> {
    map2(a, la, b, lb, |x, y| binary_i(op, x, y))
}

/// Binary op on integers. Division rounds toward zero; `pow` with a negative exponent is 0.
#[inline]
pub(crate) fn binary_i(op: BinaryOp, a: i32, b: i32) -> i32 {
    match op {
        BinaryOp::Add => a.wrapping_add(b),
        BinaryOp::Sub => a.wrapping_sub(b),
        BinaryOp::Mul => a.wrapping_mul(b),
        BinaryOp::Div => {
            if b == 0 {
                0
            } else {
                a.wrapping_div(b)
            }
        }
        BinaryOp::Pow => {
            if b < 0 {
                0
            } else {
                a.wrapping_pow(b as u32)
            }
        }
        BinaryOp::Maximum => a.max(b),
        BinaryOp::Minimum => a.min(b),
        BinaryOp::Eq => (a == b) as i32,
        BinaryOp::Ne => (a != b) as i32,
        BinaryOp::Lt => (a < b) as i32,
        BinaryOp::Le => (a <= b) as i32,
        BinaryOp::Gt => (a > b) as i32,
        BinaryOp::Ge => (a >= b) as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPS: [UnaryOp; 19] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Recip,
        UnaryOp::Sqr,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Relu,
        UnaryOp::GeluTanh,
        UnaryOp::GeluErf,
        UnaryOp::Silu,
        UnaryOp::Affine { mul: 1.5, add: -2.0 },
        UnaryOp::Powf(2.5),
        UnaryOp::MaxScalar(0.3),
    ];

    #[test]
    fn derivatives_match_central_differences() {
        for op in OPS {
            for &x in &[0.37f64, 1.3, 2.9, -0.8, -2.2] {
                if matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Powf(_)) && x < 0.0 {
                    continue;
                }
                let h = 1e-6;
                let fd = (unary_f(op, x + h) - unary_f(op, x - h)) / (2.0 * h);
                let df = unary_df(op, x);
                assert!((fd - df).abs() < 1e-6 * (1.0 + df.abs()), "{op:?} at {x}: fd {fd} vs {df}");
            }
        }
    }

    #[test]
    fn known_values() {
        assert!((unary_f(UnaryOp::GeluErf, 1.0f64) - 0.841_344_746).abs() < 1e-6);
        assert!((unary_f(UnaryOp::GeluTanh, 1.0f64) - 0.841_191_990).abs() < 1e-6);
        assert!((erf(0.5f64) - 0.520_499_877_813_046_5).abs() < 1e-13);
        assert!((erf(-3.0f64) + 0.999_977_909_503_001_4).abs() < 1e-13);
        assert!((erf(2.4999f64) - erf(2.5001f64) + 0.0002 * 0.002_178_284_8).abs() < 1e-9);
        assert_eq!(unary_f(UnaryOp::Sigmoid, -1000.0f32), 0.0);
        assert_eq!(unary_f(UnaryOp::Sigmoid, 1000.0f32), 1.0);
    }
}

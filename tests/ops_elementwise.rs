//! Elementwise ops: unary (with scalar parameters), binary with broadcasting, comparisons,
//! where_cond, masked_fill and to_dtype. Gradients are checked against finite differences
//! on random strided inputs; forwards against hand-computed values and a scalar reference.

mod common;

use common::*;
use plies::autodiff::{BinaryOp, DType, Result, Tensor};
use plies::core::{UnaryOp, PLAIN_UNARY_METHODS, UNARY_OPS};
use proptest::prelude::*;

// === Unary ops ===

struct Unary {
    name: &'static str,
    op: fn(&Tensor) -> Result<Tensor>,
    /// Maps a base value in [-1, 1] into the op's smooth domain.
    domain: fn(f64) -> f64,
    reference: fn(f64) -> f64,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// erf by composite Simpson integration of 2/sqrt(pi) exp(-t^2): slow, simple and
/// independent of the library's series.
fn erf_ref(x: f64) -> f64 {
    let n = 4000;
    let h = x / n as f64;
    let f = |t: f64| (-t * t).exp();
    let mut s = f(0.0) + f(x);
    for i in 1..n {
        s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
}

const UNARY: &[Unary] = &[
    Unary { name: "neg", op: |x| x.try_neg(), domain: |u| 3.0 * u, reference: |x| -x },
    Unary { name: "abs", op: |x| x.try_abs(), domain: |u| avoid(3.0 * u, &[0.0], 0.1), reference: f64::abs },
    Unary { name: "exp", op: |x| x.try_exp(), domain: |u| 3.0 * u, reference: f64::exp },
    Unary { name: "log", op: |x| x.try_log(), domain: positive, reference: f64::ln },
    Unary { name: "sqrt", op: |x| x.try_sqrt(), domain: positive, reference: f64::sqrt },
    Unary { name: "rsqrt", op: |x| x.try_rsqrt(), domain: positive, reference: |x| 1.0 / x.sqrt() },
    Unary { name: "recip", op: |x| x.try_recip(), domain: nonzero, reference: |x| 1.0 / x },
    Unary { name: "sqr", op: |x| x.try_sqr(), domain: |u| 3.0 * u, reference: |x| x * x },
    Unary { name: "sin", op: |x| x.try_sin(), domain: |u| 4.0 * u, reference: f64::sin },
    Unary { name: "cos", op: |x| x.try_cos(), domain: |u| 4.0 * u, reference: f64::cos },
    Unary { name: "tanh", op: |x| x.try_tanh(), domain: |u| 3.0 * u, reference: f64::tanh },
    Unary { name: "sigmoid", op: |x| x.try_sigmoid(), domain: |u| 5.0 * u, reference: sigmoid },
    Unary { name: "relu", op: |x| x.try_relu(), domain: |u| avoid(3.0 * u, &[0.0], 0.1), reference: |x| x.max(0.0) },
    Unary {
        name: "gelu_tanh",
        op: |x| x.try_gelu_tanh(),
        domain: |u| 4.0 * u,
        reference: |x| 0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh()),
    },
    Unary {
        name: "gelu_erf",
        op: |x| x.try_gelu_erf(),
        // Wide enough to cross the library's erf branch point at |x / sqrt 2| = 2.5.
        domain: |u| 4.5 * u,
        reference: |x| 0.5 * x * (1.0 + erf_ref(x / std::f64::consts::SQRT_2)),
    },
    Unary { name: "silu", op: |x| x.try_silu(), domain: |u| 5.0 * u, reference: |x| x * sigmoid(x) },
    // The textbook form: fine in f64 on this domain, and independent of the kernels' log1p.
    Unary { name: "softplus", op: |x| x.try_softplus(), domain: |u| 6.0 * u, reference: |x| (1.0 + x.exp()).ln() },
    Unary { name: "affine", op: |x| x.try_affine(1.5, -0.25), domain: |u| 3.0 * u, reference: |x| 1.5 * x - 0.25 },
    Unary { name: "add_scalar", op: |x| x.try_add_scalar(0.7), domain: |u| 3.0 * u, reference: |x| x + 0.7 },
    Unary { name: "mul_scalar", op: |x| x.try_mul_scalar(-2.5), domain: |u| 3.0 * u, reference: |x| -2.5 * x },
    Unary { name: "powf(2.5)", op: |x| x.try_powf(2.5), domain: positive, reference: |x| x.powf(2.5) },
    Unary { name: "powf(-1.5)", op: |x| x.try_powf(-1.5), domain: positive, reference: |x| x.powf(-1.5) },
    // An integer exponent is defined for negative bases too.
    Unary { name: "powf(3)", op: |x| x.try_powf(3.0), domain: |u| 2.0 * u, reference: |x| x * x * x },
    Unary {
        name: "clamp",
        op: |x| x.try_clamp(-0.5, 0.8),
        domain: |u| avoid(2.0 * u, &[-0.5, 0.8], 0.1),
        reference: |x| x.clamp(-0.5, 0.8),
    },
    // Piecewise constant: the gradient is 0 away from 0.
    Unary {
        name: "sign",
        op: |x| x.try_sign(),
        domain: |u| avoid(2.0 * u, &[0.0], 0.1),
        reference: |x| if x > 0.0 { 1.0 } else { -1.0 },
    },
    Unary {
        name: "max_scalar(0.3)",
        op: |x| x.try_unary(UnaryOp::MaxScalar(0.3)),
        domain: |u| avoid(2.0 * u, &[0.3], 0.1),
        reference: |x| x.max(0.3),
    },
    Unary {
        name: "min_scalar(-0.2)",
        op: |x| x.try_unary(UnaryOp::MinScalar(-0.2)),
        domain: |u| avoid(2.0 * u, &[-0.2], 0.1),
        reference: |x| x.min(-0.2),
    },
    Unary { name: "operator *", op: |x| Ok(x * 2.0), domain: |u| 3.0 * u, reference: |x| 2.0 * x },
    Unary { name: "operator -", op: |x| Ok(x - 1.5), domain: |u| 3.0 * u, reference: |x| x - 1.5 },
    Unary { name: "operator /", op: |x| Ok(x / 4.0), domain: |u| 3.0 * u, reference: |x| x / 4.0 },
    Unary { name: "operator neg", op: |x| Ok(-x), domain: |u| 3.0 * u, reference: |x| -x },
];

/// The op table in core is the list of ops: each needs a reference above (an entry named
/// after it, or `name(params)`), so a new op cannot skip the forward check.
#[test]
fn every_table_op_has_a_reference() {
    for op in UNARY_OPS {
        let covered = UNARY.iter().any(|u| u.name == op.name || u.name.starts_with(&format!("{}(", op.name)));
        assert!(covered, "unary op `{}` of core's table has no reference in tests/ops_elementwise.rs", op.name);
    }
    // And every generated method reaches its own op.
    let x = Tensor::new(plies::core::Array::from_vec(vec![0.7f64, 1.3], [2], plies::core::Device::Cpu).unwrap());
    for &(name, op) in PLAIN_UNARY_METHODS {
        let via_method = UNARY.iter().find(|u| u.name == name).map(|u| tvals(&(u.op)(&x).unwrap()));
        let via_op = tvals(&x.unary(op));
        assert_eq!(via_method, Some(via_op), "method `{name}`");
    }
}

/// Maps u in [-1, 1] into `(lo, hi)`, keeping 0.1 away from the kinks.
fn into_domain(u: f64, (lo, hi): (f64, f64), kinks: &[f64]) -> f64 {
    avoid(lo + (hi - lo) * (0.5 + 0.5 * u), kinks, 0.1).clamp(lo, hi)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The backward rule of every op of core's table against finite differences, on the
    /// table's domain: a new op is checked without a line here.
    #[test]
    fn every_table_op_gradient(src in any_source(0..=3, true)) {
        for op in UNARY_OPS {
            let x = src.map(|u| into_domain(u, op.domain, op.kinks)).array();
            gradcheck(op.name, |t| t[0].try_unary(op.example), &[x]);
        }
    }

    #[test]
    fn unary_gradients(src in any_source(0..=4, true)) {
        for u in UNARY {
            let x = src.map(u.domain).array();
            gradcheck(u.name, |t| (u.op)(&t[0]), &[x]);
        }
    }

    #[test]
    fn unary_forward_matches_reference(src in any_source(0..=4, true)) {
        for u in UNARY {
            let s = src.map(u.domain);
            let want: Vec<f64> = s.values().iter().map(|&v| (u.reference)(v)).collect();
            let got = tvals(&(u.op)(&Tensor::new(s.array())).unwrap());
            assert_close(&got, &want, 1e-11);
            // f32 runs the same kernels at f32 precision, from f32-rounded inputs.
            let want32: Vec<f64> = s.values().iter().map(|&v| (u.reference)(v as f32 as f64)).collect();
            let y = (u.op)(&Tensor::new(s.array_as(DType::F32))).unwrap();
            assert_eq!(y.dtype(), DType::F32, "{}", u.name);
            assert_close(&tvals(&y), &want32, 2e-6);
        }
    }

    /// The f32 backward kernels agree with the (finite-difference-checked) f64 ones.
    #[test]
    fn unary_f32_gradients_match_f64(src in any_source(0..=3, true)) {
        for u in UNARY {
            // f32 inputs and upstream gradient, and the same values in f64.
            let s = src.map(u.domain);
            let (x32, w32) = (s.array_as(DType::F32), s.map(|v| 0.5 + v).array_as(DType::F32).contiguous().unwrap());
            let (x64, w64) = (x32.to_dtype(DType::F64).unwrap(), w32.to_dtype(DType::F64).unwrap());
            let grad = |x: plies::autodiff::Array, w| {
                let x = Tensor::param(x);
                (u.op)(&x).unwrap().backward_with(w).unwrap();
                vals(&x.grad().unwrap())
            };
            assert_close(&grad(x32, w32), &grad(x64, w64), 1e-5);
        }
    }
}

#[test]
fn unary_forward_hand_values() {
    let x = ten(&[-2.0, -0.5, 0.0, 0.5, 2.0], &[5]);
    assert_eq!(tvals(&x.neg()), [2.0, 0.5, -0.0, -0.5, -2.0]);
    assert_eq!(tvals(&x.abs()), [2.0, 0.5, 0.0, 0.5, 2.0]);
    assert_eq!(tvals(&x.sign()), [-1.0, -1.0, 0.0, 1.0, 1.0]);
    assert_eq!(tvals(&x.relu()), [0.0, 0.0, 0.0, 0.5, 2.0]);
    assert_eq!(tvals(&x.sqr()), [4.0, 0.25, 0.0, 0.25, 4.0]);
    assert_eq!(tvals(&x.clamp(-1.0, 1.0)), [-1.0, -0.5, 0.0, 0.5, 1.0]);
    assert_eq!(tvals(&x.affine(2.0, 1.0)), [-3.0, 0.0, 1.0, 2.0, 5.0]);
    assert_eq!(tvals(&x.add_scalar(1.0)), [-1.0, 0.5, 1.0, 1.5, 3.0]);
    assert_eq!(tvals(&x.mul_scalar(-2.0)), [4.0, 1.0, -0.0, -1.0, -4.0]);
    // sigmoid(0) = 1/2, silu(0) = gelu(0) = 0, tanh(0) = 0
    assert_eq!(tvals(&x.sigmoid())[2], 0.5);
    assert_eq!(tvals(&x.silu())[2], 0.0);
    assert_eq!(tvals(&x.gelu_tanh())[2], 0.0);
    assert_eq!(tvals(&x.gelu_erf())[2], 0.0);
    assert_eq!(tvals(&x.tanh())[2], 0.0);

    let p = ten(&[0.25, 1.0, 4.0, 9.0], &[4]);
    assert_eq!(tvals(&p.sqrt()), [0.5, 1.0, 2.0, 3.0]);
    assert_eq!(tvals(&p.rsqrt()), [2.0, 1.0, 0.5, 1.0 / 3.0]);
    assert_eq!(tvals(&p.recip()), [4.0, 1.0, 0.25, 1.0 / 9.0]);
    assert_eq!(tvals(&p.powf(1.5)), [0.125, 1.0, 8.0, 27.0]);
    assert_eq!(tvals(&p.powf(-1.0)), [4.0, 1.0, 0.25, 1.0 / 9.0]);
    assert_close(&tvals(&p.log()), &[-2.0 * 2f64.ln(), 0.0, 2.0 * 2f64.ln(), 2.0 * 3f64.ln()], 1e-15);
    assert_close(
        &tvals(&ten(&[0.0, 1.0, -1.0], &[3]).exp()),
        &[1.0, std::f64::consts::E, 1.0 / std::f64::consts::E],
        1e-15,
    );
    let h = std::f64::consts::FRAC_PI_2;
    assert_close(&tvals(&ten(&[0.0, h, -h], &[3]).sin()), &[0.0, 1.0, -1.0], 1e-15);
    assert_close(&tvals(&ten(&[0.0, h, 2.0 * h], &[3]).cos()), &[1.0, 0.0, -1.0], 1e-15);
    // tanh(ln 2) = 3/5; sigmoid(ln 3) = 3/4; silu(ln 3) = 3/4 ln 3
    let l2 = 2f64.ln();
    let l3 = 3f64.ln();
    assert_close(&tvals(&ten(&[l2], &[1]).tanh()), &[0.6], 1e-15);
    assert_close(&tvals(&ten(&[l3], &[1]).sigmoid()), &[0.75], 1e-15);
    assert_close(&tvals(&ten(&[l3], &[1]).silu()), &[0.75 * l3], 1e-15);
    // Published values: GELU(1) = Phi(1) = 0.8413447460685429, the tanh form 0.8411919906082768.
    assert_close(&tvals(&ten(&[1.0], &[1]).gelu_erf()), &[0.841_344_746_068_542_9], 1e-13);
    assert_close(&tvals(&ten(&[1.0], &[1]).gelu_tanh()), &[0.841_191_990_608_276_8], 1e-13);
    // NaN propagates through the piecewise ops too (as in PyTorch): a NaN must not be hidden.
    let nan = ten(&[f64::NAN], &[1]);
    for (name, y) in [("relu", nan.relu()), ("clamp", nan.clamp(-1.0, 1.0)), ("abs", nan.abs())] {
        assert!(tvals(&y)[0].is_nan(), "{name}(NaN) = {:?}", tvals(&y));
    }
    // Saturation without overflow.
    assert_eq!(tvals(&ten(&[-800.0, 800.0], &[2]).sigmoid()), [0.0, 1.0]);
    assert_eq!(tvals(&ten(&[-800.0, 800.0], &[2]).silu()), [-0.0, 800.0]);
}

#[test]
fn unary_gradient_hand_values() {
    // Subgradient 0 at the kinks (as PyTorch), 1/-1 elsewhere.
    let x = Tensor::param(arr(&[-1.0, 0.0, 1.0], &[3]));
    x.relu().add(&x.abs()).sum_all().backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), [-1.0, 0.0, 2.0]);
    // clamp passes the gradient strictly inside [min, max] only.
    let x = Tensor::param(arr(&[-2.0, 0.0, 2.0], &[3]));
    x.clamp(-1.0, 1.0).sum_all().backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), [0.0, 1.0, 0.0]);
}

// === Binary ops with broadcasting ===

/// Maps a base value in [-1, 1] into an operand's domain.
type Domain = fn(f64) -> f64;

struct Binary {
    name: &'static str,
    op: fn(&Tensor, &Tensor) -> Result<Tensor>,
    domain: (Domain, Domain),
    reference: fn(f64, f64) -> f64,
}

fn any3(u: f64) -> f64 {
    3.0 * u
}

const BINARY: &[Binary] = &[
    Binary { name: "add", op: |a, b| a.try_add(b), domain: (any3, any3), reference: |a, b| a + b },
    Binary { name: "sub", op: |a, b| a.try_sub(b), domain: (any3, any3), reference: |a, b| a - b },
    Binary { name: "mul", op: |a, b| a.try_mul(b), domain: (any3, any3), reference: |a, b| a * b },
    Binary { name: "div", op: |a, b| a.try_div(b), domain: (any3, nonzero), reference: |a, b| a / b },
    Binary { name: "pow", op: |a, b| a.try_pow(b), domain: (positive, |u| 2.0 * u), reference: f64::powf },
    Binary {
        name: "maximum",
        op: |a, b| a.try_maximum(b),
        domain: (|u| lattice(u, 0), |u| lattice(u, 1)),
        reference: f64::max,
    },
    Binary {
        name: "minimum",
        op: |a, b| a.try_minimum(b),
        domain: (|u| lattice(u, 1), |u| lattice(u, 0)),
        reference: f64::min,
    },
    Binary { name: "operator +", op: |a, b| Ok(a + b), domain: (any3, any3), reference: |a, b| a + b },
    Binary { name: "operator -", op: |a, b| Ok(a - b), domain: (any3, any3), reference: |a, b| a - b },
    Binary { name: "operator *", op: |a, b| Ok(a * b), domain: (any3, any3), reference: |a, b| a * b },
    Binary { name: "operator /", op: |a, b| Ok(a / b), domain: (any3, nonzero), reference: |a, b| a / b },
];

fn pair_sources() -> BoxedStrategy<(Source, Source)> {
    broadcast_pair(0..=4).prop_flat_map(|(a, b)| (source(a, true), source(b, true))).boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn binary_gradients((sa, sb) in pair_sources()) {
        for op in BINARY {
            let (a, b) = (sa.map(op.domain.0).array(), sb.map(op.domain.1).array());
            gradcheck(op.name, |t| (op.op)(&t[0], &t[1]), &[a, b]);
        }
    }

    #[test]
    fn binary_forward_matches_reference((sa, sb) in pair_sources()) {
        let out = broadcast_dims(&sa.dims, &sb.dims);
        for op in BINARY {
            let (ma, mb) = (sa.map(op.domain.0), sb.map(op.domain.1));
            for (dtype, tol) in [(DType::F64, 1e-15), (DType::F32, 1e-6)] {
                let round = |v: f64| if dtype == DType::F32 { v as f32 as f64 } else { v };
                let a = broadcast_values(&ma.values(), &ma.dims, &out);
                let b = broadcast_values(&mb.values(), &mb.dims, &out);
                let want: Vec<f64> = a.iter().zip(&b).map(|(&x, &y)| (op.reference)(round(x), round(y))).collect();
                let y = (op.op)(&Tensor::new(ma.array_as(dtype)), &Tensor::new(mb.array_as(dtype))).unwrap();
                assert_eq!(y.dims(), out, "{}", op.name);
                assert_close(&tvals(&y), &want, tol);
            }
        }
    }

    /// A tensor used several times accumulates its gradient from every use.
    #[test]
    fn reused_inputs_accumulate(src in any_source(0..=3, true)) {
        let x = src.array();
        gradcheck("x*x + exp(x) - x/2", |t| t[0].try_mul(&t[0])?.try_add(&t[0].try_exp()?)?.try_sub(&t[0].try_mul_scalar(0.5)?), &[x]);
    }

    #[test]
    fn comparisons_match_reference((sa, sb) in pair_sources()) {
        // Coarse values so that ties are common.
        let (sa, sb) = (sa.map(|u| (2.0 * u).round()), sb.map(|u| (2.0 * u).round()));
        let out = broadcast_dims(&sa.dims, &sb.dims);
        let a = broadcast_values(&sa.values(), &sa.dims, &out);
        let b = broadcast_values(&sb.values(), &sb.dims, &out);
        type Predicate = fn(f64, f64) -> bool;
        let cases: [(BinaryOp, Predicate); 6] = [
            (BinaryOp::Eq, |a, b| a == b),
            (BinaryOp::Ne, |a, b| a != b),
            (BinaryOp::Lt, |a, b| a < b),
            (BinaryOp::Le, |a, b| a <= b),
            (BinaryOp::Gt, |a, b| a > b),
            (BinaryOp::Ge, |a, b| a >= b),
        ];
        for dtype in [DType::F64, DType::F32, DType::I32] {
            let (ta, tb) = (leaf(sa.array_as(dtype)), Tensor::new(sb.array_as(dtype)));
            for (op, f) in cases {
                let want: Vec<f64> = a.iter().zip(&b).map(|(&x, &y)| f(x, y) as u8 as f64).collect();
                let y = ta.compare(op, &tb);
                assert_eq!(y.dtype(), dtype);
                assert!(!y.requires_grad(), "comparisons are not differentiable");
                assert_eq!(tvals(&y), want, "{op:?} {dtype}");
                let want: Vec<f64> = sa.values().iter().map(|&x| f(x, 0.0) as u8 as f64).collect();
                assert_eq!(tvals(&ta.compare_scalar(op, 0.0)), want, "{op:?} scalar {dtype}");
            }
        }
    }

    #[test]
    fn where_cond_gradients_and_values(shapes in broadcast_shapes(3, 0..=4).prop_flat_map(|s| {
        (source(s[0].clone(), true), source(s[1].clone(), true), source(s[2].clone(), true))
    })) {
        let (sc, st, sf) = shapes;
        // Any nonzero condition selects on_true; i32 and float conditions behave alike.
        let sc = sc.map(|u| (2.0 * u).round());
        gradcheck("where_cond", |t| Tensor::try_where_cond(&t[0], &t[1], &t[2]), &[sc.array_as(DType::I32), st.array(), sf.array()]);
        let out = broadcast_dims(&broadcast_dims(&sc.dims, &st.dims), &sf.dims);
        let c = broadcast_values(&sc.values(), &sc.dims, &out);
        let a = broadcast_values(&st.values(), &st.dims, &out);
        let b = broadcast_values(&sf.values(), &sf.dims, &out);
        let want: Vec<f64> = (0..c.len()).map(|i| if c[i] != 0.0 { a[i] } else { b[i] }).collect();
        for cdtype in [DType::I32, DType::F64] {
            let y = Tensor::where_cond(&Tensor::new(sc.array_as(cdtype)), &Tensor::new(st.array()), &Tensor::new(sf.array()));
            assert_eq!(tvals(&y), want);
        }
    }

    #[test]
    fn masked_fill_gradients_and_values((sx, sm) in shape(0..=4).prop_flat_map(|d| {
        (source(d.clone(), true), broadcastable_to(d).prop_flat_map(|m| source(m, true)))
    })) {
        let sm = sm.map(|u| (u > 0.3) as u8 as f64);
        gradcheck("masked_fill", |t| t[0].try_masked_fill(&t[1], -7.5), &[sx.array(), sm.array_as(DType::I32)]);
        let m = broadcast_values(&sm.values(), &sm.dims, &sx.dims);
        let want: Vec<f64> = sx.values().iter().zip(&m).map(|(&x, &m)| if m != 0.0 { -7.5 } else { x }).collect();
        assert_eq!(tvals(&Tensor::new(sx.array()).masked_fill(&Tensor::new(sm.array_as(DType::I32)), -7.5)), want);
    }
}

/// A float leaf that requires a gradient, or an i32 constant.
fn leaf(a: plies::autodiff::Array) -> Tensor {
    if a.dtype().is_float() {
        Tensor::param(a)
    } else {
        Tensor::new(a)
    }
}

#[test]
fn binary_forward_hand_values() {
    let a = ten(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let row = ten(&[10.0, 20.0, 30.0], &[3]);
    let col = ten(&[1.0, -1.0], &[2, 1]);
    assert_eq!(tvals(&a.add(&row)), [11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    assert_eq!(tvals(&a.sub(&col)), [0.0, 1.0, 2.0, 5.0, 6.0, 7.0]);
    assert_eq!(tvals(&a.mul(&col)), [1.0, 2.0, 3.0, -4.0, -5.0, -6.0]);
    assert_eq!(tvals(&row.div(&ten(&[4.0], &[1]))), [2.5, 5.0, 7.5]);
    // [2, 1] with [3] broadcasts to [2, 3].
    let outer = col.mul(&row);
    assert_eq!(outer.dims(), [2, 3]);
    assert_eq!(tvals(&outer), [10.0, 20.0, 30.0, -10.0, -20.0, -30.0]);
    assert_eq!(tvals(&ten(&[2.0, 4.0, 9.0], &[3]).pow(&ten(&[3.0, 0.5, -1.0], &[3]))), [8.0, 2.0, 1.0 / 9.0]);
    let (p, q) = (ten(&[1.0, 5.0, -2.0], &[3]), ten(&[3.0, 4.0, -2.0], &[3]));
    assert_eq!(tvals(&p.maximum(&q)), [3.0, 5.0, -2.0]);
    assert_eq!(tvals(&p.minimum(&q)), [1.0, 4.0, -2.0]);
    // A rank-0 operand broadcasts everywhere.
    assert_eq!(tvals(&a.sub(&ten(&[1.0], &[]))), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    // Comparisons give 1/0 in the input dtype.
    assert_eq!(tvals(&p.lt(&q)), [1.0, 0.0, 0.0]);
    assert_eq!(tvals(&p.le(&q)), [1.0, 0.0, 1.0]);
    assert_eq!(tvals(&p.eq(&q)), [0.0, 0.0, 1.0]);
    assert_eq!(tvals(&p.ne(&q)), [1.0, 1.0, 0.0]);
    assert_eq!(tvals(&p.gt(&q)), [0.0, 1.0, 0.0]);
    assert_eq!(tvals(&p.ge(&q)), [0.0, 1.0, 1.0]);
    let i = iten(&[3, -1, 0], &[3]);
    assert_eq!(i.compare_scalar(BinaryOp::Gt, 0.0).to_vec::<i32>(), [1, 0, 0]);
}

#[test]
fn maximum_and_minimum_split_ties_and_propagate_nan() {
    // At a tie each side gets half the gradient (as torch.maximum).
    let a = Tensor::param(arr(&[1.0, 2.0, 3.0], &[3]));
    let b = Tensor::param(arr(&[1.0, 5.0, 0.0], &[3]));
    a.maximum(&b).sum_all().backward().unwrap();
    assert_eq!(vals(&a.grad().unwrap()), [0.5, 0.0, 1.0]);
    assert_eq!(vals(&b.grad().unwrap()), [0.5, 1.0, 0.0]);
    let (a, b) = (ten(&[f64::NAN, 1.0], &[2]), ten(&[1.0, f64::NAN], &[2]));
    for y in [a.maximum(&b), a.minimum(&b), b.maximum(&a), b.minimum(&a)] {
        assert!(tvals(&y).iter().all(|v| v.is_nan()), "NaN must propagate: {:?}", tvals(&y));
    }
}

#[test]
fn where_and_masked_fill_hand_values() {
    let c = iten(&[1, 0, 2, 0], &[2, 2]);
    let t = Tensor::param(arr(&[1.0, 2.0], &[2]));
    let f = Tensor::param(arr(&[-1.0], &[1]));
    let y = Tensor::where_cond(&c, &t, &f);
    assert_eq!(tvals(&y), [1.0, -1.0, 1.0, -1.0]);
    y.sum_all().backward().unwrap();
    assert_eq!(vals(&t.grad().unwrap()), [2.0, 0.0]);
    assert_eq!(vals(&f.grad().unwrap()), [2.0]);
    let x = Tensor::param(arr(&[1.0, 2.0, 3.0, 4.0], &[2, 2]));
    let y = x.masked_fill(&iten(&[0, 1], &[2]), f64::NEG_INFINITY);
    assert_eq!(tvals(&y), [1.0, f64::NEG_INFINITY, 3.0, f64::NEG_INFINITY]);
    x.masked_fill(&iten(&[0, 1], &[2]), 5.0).sum_all().backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), [1.0, 0.0, 1.0, 0.0]);
}

#[test]
fn to_dtype_converts_values_and_casts_the_gradient_back() {
    let x = Tensor::param(arr(&[1.5, -2.25, 3.0], &[3]));
    let y = x.to_dtype(DType::F32);
    assert_eq!(y.dtype(), DType::F32);
    assert_eq!(y.to_vec::<f32>(), [1.5, -2.25, 3.0]);
    y.mul_scalar(2.0).sum_all().backward().unwrap();
    let g = x.grad().unwrap();
    assert_eq!(g.dtype(), DType::F64);
    assert_eq!(vals(&g), [2.0, 2.0, 2.0]);
    // Float to i32 truncates toward zero (as `as`); i32 to float is exact.
    let i = ten(&[1.9, -1.9, 0.5, -0.5], &[4]).to_dtype(DType::I32);
    assert_eq!(i.to_vec::<i32>(), [1, -1, 0, 0]);
    assert_eq!(iten(&[7, -3], &[2]).to_dtype(DType::F32).to_vec::<f32>(), [7.0, -3.0]);
    // Strided inputs convert in logical order.
    let t = Tensor::new(arr(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).t().unwrap());
    assert_eq!(t.to_dtype(DType::F32).to_vec::<f32>(), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    // f64 -> f32 rounds to nearest.
    let r = ten(&[0.1], &[1]).to_dtype(DType::F32).to_vec::<f32>();
    assert_eq!(r, [0.1f32]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn to_dtype_on_strided_inputs(src in any_source(0..=4, true)) {
        let s = src.map(|u| 50.0 * u);
        let x = Tensor::param(s.array());
        let want32: Vec<f32> = s.values().iter().map(|&v| v as f32).collect();
        let y = x.to_dtype(DType::F32);
        assert_eq!(y.to_vec::<f32>(), want32);
        let want_i: Vec<i32> = s.values().iter().map(|&v| v as i32).collect();
        assert_eq!(x.to_dtype(DType::I32).to_vec::<i32>(), want_i);
        assert_eq!(Tensor::new(s.array_as(DType::I32)).to_dtype(DType::F64).to_vec::<i32>(), want_i);
        // The gradient comes back in the input's dtype and layout-independent order.
        let w = s.map(|v| v / 25.0).array_as(DType::F32);
        y.backward_with(w.contiguous().unwrap()).unwrap();
        let g = x.grad().unwrap();
        assert_eq!(g.dtype(), DType::F64);
        assert_eq!(vals(&g), vals(&w));
        gradcheck("to_dtype", |t| t[0].try_to_dtype(DType::F64)?.try_sin(), &[s.array()]);
    }
}

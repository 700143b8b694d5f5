//! The gradient checker itself: it must pass correct gradients and catch wrong ones. A
//! `detach()` inside the function keeps the finite differences honest while cutting the
//! analytic gradient, which is exactly a wrong backward rule seen from outside.

mod common;

use common::*;
use plies::autodiff::{check_gradients, DType, Error, GradCheck, Tensor};
use proptest::prelude::*;

#[test]
fn passes_correct_gradients() {
    let x = arr(&[0.3, -1.2, 2.0, 0.7], &[2, 2]);
    check_gradients(|t| t[0].try_mul(&t[0])?.try_exp(), std::slice::from_ref(&x)).unwrap();
    // f32 inputs are checked in f64; strided inputs keep their layout.
    check_gradients(|t| t[0].try_tanh(), &[x.to_dtype(DType::F32).unwrap()]).unwrap();
    check_gradients(|t| t[0].try_sin()?.try_sum(0, false), &[x.t().unwrap()]).unwrap();
}

#[test]
fn catches_a_gradient_cut_by_detach() {
    let x = arr(&[0.3, -1.2, 2.0, 0.7], &[2, 2]);
    // d/dx (x * x) = 2x, but with one factor detached backward reports x.
    let e = check_gradients(|t| t[0].try_mul(&t[0].detach()), std::slice::from_ref(&x)).unwrap_err().to_string();
    assert!(e.starts_with("gradient check failed at 4 element(s)"), "{e}");
    assert!(e.contains("input 0 element 0: analytic"), "{e}");
    // Deep inside a chain, and only on part of the computation.
    let e = check_gradients(
        |t| t[0].try_exp()?.try_mul(&t[0].detach().try_sin()?)?.try_sum_all(),
        std::slice::from_ref(&x),
    );
    assert!(e.is_err());
    // Only the detached input is reported.
    let y = arr(&[1.5, -0.5], &[2]);
    let e = check_gradients(|t| t[0].try_mul(&t[1].detach()), &[y.clone(), y]).unwrap_err().to_string();
    assert!(e.contains("input 1 element 0") && !e.contains("input 0 element"), "{e}");
}

#[test]
fn catches_small_errors() {
    // A wrong term worth 0.1% of the gradient is far above the tolerances.
    let x = arr(&[0.5, 1.0, 2.0], &[3]);
    let r = check_gradients(|t| t[0].try_add(&t[0].detach().try_sqr()?.try_mul_scalar(5e-4)?), &[x]);
    assert!(r.is_err());
}

#[test]
fn refuses_a_function_without_a_gradient() {
    let x = arr(&[1.0, 2.0], &[2]);
    let e = check_gradients(|t| t[0].detach().try_exp(), &[x]).unwrap_err();
    assert!(matches!(e, Error::NoGradient { .. }));
    assert_eq!(e.to_string(), "gradcheck: the output does not depend on any float input");
}

#[test]
fn tolerances_and_seed_are_used() {
    // A loose enough tolerance accepts the detached version; the default does not.
    let x = arr(&[0.5, 1.0, 2.0], &[3]);
    let f = |t: &[Tensor]| t[0].try_add(&t[0].detach().try_sqr()?.try_mul_scalar(1e-3)?);
    assert!(check_gradients(f, std::slice::from_ref(&x)).is_err());
    let loose = GradCheck { atol: 1e-2, ..Default::default() };
    loose.check(f, std::slice::from_ref(&x)).unwrap();
    for seed in 0..4 {
        GradCheck { seed, ..Default::default() }.check(|t| t[0].try_sigmoid(), std::slice::from_ref(&x)).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// On any strided input, a detached factor is caught.
    #[test]
    fn detach_is_always_caught(src in any_source(0..=3, true)) {
        let x = src.map(nonzero).array();
        prop_assert!(check_gradients(|t| t[0].try_mul(&t[0].detach()), std::slice::from_ref(&x)).is_err());
        prop_assert!(check_gradients(|t| t[0].try_mul(&t[0]), std::slice::from_ref(&x)).is_ok());
    }
}

//! Initialisations draw from the distributions their formulas give (PyTorch's fans).

use plies_nn::init::{fans, Init, Initializer};

fn moments(init: Initializer, shape: &[usize]) -> (f64, f64, f64) {
    let v: Vec<f64> = Init::new(3).param(shape, init).to_vec();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let max = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    (mean, std, max)
}

#[test]
fn fans_follow_pytorch() {
    assert_eq!(fans(&[256, 64].into()), (64, 256));
    assert_eq!(fans(&[8, 3, 5, 5].into()), (75, 200));
}

#[test]
fn standard_initialisations() {
    let shape = [400, 100]; // fan_in 100, fan_out 400
    let (fi, fo) = (100.0f64, 400.0f64);
    let check = |init, want_std: f64, bound: Option<f64>| {
        let (mean, std, max) = moments(init, &shape);
        // 40,000 draws: the sample mean is within 5 standard errors of 0.
        assert!(mean.abs() < 5.0 * want_std / 200.0, "{init:?}: mean {mean}");
        assert!((std / want_std - 1.0).abs() < 0.02, "{init:?}: std {std}, want {want_std}");
        if let Some(b) = bound {
            assert!(max <= b && max > 0.99 * b, "{init:?}: max {max}, bound {b}");
        }
    };
    let g = Initializer::relu_gain();
    check(Initializer::KaimingUniform { gain: g }, g / fi.sqrt(), Some(g * (3.0 / fi).sqrt()));
    check(Initializer::KaimingNormal { gain: g }, g / fi.sqrt(), None);
    check(Initializer::XavierUniform { gain: 1.0 }, (2.0 / (fi + fo)).sqrt(), Some((6.0 / (fi + fo)).sqrt()));
    check(Initializer::XavierNormal { gain: 1.0 }, (2.0 / (fi + fo)).sqrt(), None);
    check(Initializer::Normal { mean: 0.0, std: 0.02 }, 0.02, None);
    // PyTorch's Linear default is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    check(Initializer::torch_default(), 1.0 / (3.0 * fi).sqrt(), Some(1.0 / fi.sqrt()));
    let (_, std, max) = moments(Initializer::Constant(0.5), &shape);
    assert_eq!((std, max), (0.0, 0.5));
    // Same seed, same parameters.
    let a: Vec<f32> = Init::new(9).param([3, 3], Initializer::XavierNormal { gain: 1.0 }).to_vec();
    let b: Vec<f32> = Init::new(9).param([3, 3], Initializer::XavierNormal { gain: 1.0 }).to_vec();
    assert_eq!(a, b);
}

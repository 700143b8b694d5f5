//! Optimizer updates against their formulas, and the rules layer-wise methods rely on:
//! no gradient, no update (and no state); groups with their own learning rates.

use plies_autodiff::{Array, DType, Device, Tensor};
use plies_nn::optim::*;
use plies_nn::NamedParam;

fn param(name: &str, v: &[f64]) -> NamedParam {
    let t = Tensor::param(Array::from_slice(v, [v.len()], Device::Cpu).unwrap());
    NamedParam { name: name.into(), layer: 0, tensor: t }
}

fn set_grad(p: &NamedParam, g: &[f64]) {
    p.tensor.set_grad(Some(Array::from_slice(g, [g.len()], Device::Cpu).unwrap()));
}

fn value(p: &NamedParam) -> Vec<f64> {
    p.tensor.to_vec()
}

fn close(a: &[f64], b: &[f64]) {
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-12 * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

const GRADS: [[f64; 2]; 3] = [[0.5, -1.0], [0.25, 2.0], [-1.5, 0.1]];

#[test]
fn sgd_follows_pytorch() {
    for (momentum, nesterov, wd) in [(0.0, false, 0.0), (0.9, false, 0.1), (0.9, true, 0.01)] {
        let p = param("w", &[1.0, -2.0]);
        let cfg = SgdConfig::new(0.1).momentum(momentum).nesterov(nesterov).weight_decay(wd);
        let mut opt = Sgd::new(vec![p.clone()], cfg).unwrap();
        let (mut x, mut buf) = ([1.0f64, -2.0], None::<[f64; 2]>);
        for g in GRADS {
            set_grad(&p, &g);
            opt.step().unwrap();
            let d: Vec<f64> = (0..2).map(|i| g[i] + wd * x[i]).collect();
            let mut step = [d[0], d[1]];
            if momentum != 0.0 {
                let b = match buf {
                    None => step,
                    Some(b) => [momentum * b[0] + d[0], momentum * b[1] + d[1]],
                };
                buf = Some(b);
                step = if nesterov { [d[0] + momentum * b[0], d[1] + momentum * b[1]] } else { b };
            }
            x = [x[0] - 0.1 * step[0], x[1] - 0.1 * step[1]];
            close(&value(&p), &x);
        }
    }
    let e = Sgd::new(vec![], SgdConfig::new(0.1).nesterov(true)).err().unwrap().to_string();
    assert!(e.contains("Nesterov momentum needs momentum > 0"), "{e}");
}

/// Adam(W) by PyTorch's formulas, in f64.
fn adam_reference(x0: [f64; 2], decoupled: bool, lr: f64, wd: f64) -> Vec<[f64; 2]> {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    let (mut x, mut m, mut v) = (x0, [0.0; 2], [0.0; 2]);
    let mut out = Vec::new();
    for (t, g) in GRADS.iter().enumerate() {
        let t = t as i32 + 1;
        for i in 0..2 {
            let mut gi = g[i];
            if decoupled {
                x[i] *= 1.0 - lr * wd;
            } else {
                gi += wd * x[i];
            }
            m[i] = b1 * m[i] + (1.0 - b1) * gi;
            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
            let denom = v[i].sqrt() / (1.0 - b2.powi(t)).sqrt() + eps;
            x[i] -= lr / (1.0 - b1.powi(t)) * m[i] / denom;
        }
        out.push(x);
    }
    out
}

#[test]
fn adam_and_adamw_follow_pytorch() {
    for (cfg, decoupled) in [(AdamConfig::adam(0.01), false), (AdamConfig::adamw(0.01, 0.1), true)] {
        let cfg = AdamConfig { weight_decay: 0.1, ..cfg };
        let p = param("w", &[1.0, -2.0]);
        let mut opt = Adam::new(vec![p.clone()], cfg).unwrap();
        for (g, want) in GRADS.iter().zip(adam_reference([1.0, -2.0], decoupled, 0.01, 0.1)) {
            set_grad(&p, g);
            opt.step().unwrap();
            close(&value(&p), &want);
        }
        assert_eq!(opt.step_count("w"), 3);
        assert_eq!(opt.state_bytes_of("w"), 2 * 2 * 8);
    }
}

#[test]
fn parameters_without_gradients_are_untouched() {
    let cfg = AdamConfig::adamw(0.01, 0.5);
    let (a, b) = (param("a", &[1.0, 2.0]), param("b", &[3.0, 4.0]));
    let mut opt = Adam::new(vec![a.clone(), b.clone()], cfg).unwrap();
    // Steps 1 and 2: only `a` has a gradient; `b` gets no decay, no state, no step count.
    for g in &GRADS[..2] {
        set_grad(&a, g);
        opt.step().unwrap();
        opt.zero_grad();
    }
    assert_eq!(value(&b), [3.0, 4.0]);
    assert_eq!(opt.step_count("b"), 0);
    assert_eq!(opt.state_bytes_of("b"), 0);
    assert_eq!(opt.state_bytes(), opt.state_bytes_of("a"));
    // Frozen with a stale gradient: still skipped.
    b.tensor.set_grad(Some(Array::ones([2], DType::F64, Device::Cpu).unwrap()));
    b.tensor.set_requires_grad(false);
    opt.step().unwrap();
    assert_eq!(value(&b), [3.0, 4.0]);
    // When `b` first gets a gradient its state starts fresh: the same update as a new
    // optimizer's first step (bias correction from step 1).
    b.tensor.set_requires_grad(true);
    set_grad(&b, &GRADS[0]);
    opt.step().unwrap();
    let fresh = param("b", &[3.0, 4.0]);
    set_grad(&fresh, &GRADS[0]);
    Adam::new(vec![fresh.clone()], cfg).unwrap().step().unwrap();
    assert_eq!(value(&b), value(&fresh));
    assert_eq!(opt.step_count("b"), 1);
    assert_eq!(opt.step_count("a"), 2, "a had no gradient in the last two steps");
}

#[test]
fn sgd_skips_parameters_without_gradients() {
    let (a, b) = (param("a", &[1.0]), param("b", &[2.0]));
    let mut opt = Sgd::new(vec![a.clone(), b.clone()], SgdConfig::new(0.1).momentum(0.9).weight_decay(0.1)).unwrap();
    set_grad(&a, &[1.0]);
    opt.step().unwrap();
    assert_eq!(value(&b), [2.0]);
    assert_eq!(opt.state_bytes_of("b"), 0);
    assert_eq!(opt.state_bytes_of("a"), 8);
}

#[test]
fn groups_have_their_own_learning_rates() {
    let (a, b) = (param("a", &[0.0]), param("b", &[0.0]));
    let groups = vec![ParamGroup::new(vec![a.clone()]), ParamGroup::new(vec![b.clone()]).lr(0.5)];
    let mut opt = Sgd::with_groups(groups, SgdConfig::new(0.1)).unwrap();
    assert_eq!(opt.groups()[0].lr, 0.1);
    assert_eq!(opt.groups()[1].lr, 0.5);
    set_grad(&a, &[1.0]);
    set_grad(&b, &[1.0]);
    opt.step().unwrap();
    close(&value(&a), &[-0.1]);
    close(&value(&b), &[-0.5]);
    // A schedule scales every group's base rate.
    let s = Schedule::LinearWarmup { warmup: 4 };
    opt.set_lr_factor(s.factor(0));
    assert_eq!(opt.groups()[1].lr, 0.125);
    opt.step().unwrap();
    close(&value(&a), &[-0.125]);
    // Parameters join later (growth) but never twice.
    let c = param("c", &[0.0]);
    opt.add_group(ParamGroup::new(vec![c.clone()]).lr(1.0)).unwrap();
    let e = opt.add_group(ParamGroup::new(vec![a.clone()])).unwrap_err().to_string();
    assert!(e.contains("parameter `a` appears in two groups"), "{e}");
    set_grad(&c, &[2.0]);
    opt.step().unwrap();
    close(&value(&c), &[-2.0]);
}

#[test]
fn clipping_by_global_norm() {
    let (a, b) = (param("a", &[0.0, 0.0]), param("b", &[0.0]));
    let c = param("c", &[0.0]); // no gradient: ignored
    set_grad(&a, &[3.0, 0.0]);
    set_grad(&b, &[4.0]);
    let ps = [a.clone(), b.clone(), c];
    let norm = clip_grad_norm(&ps, 10.0).unwrap().unwrap();
    assert_eq!(norm.to_scalar::<f64>().unwrap(), 5.0);
    assert_eq!(a.tensor.grad().unwrap().to_vec::<f64>().unwrap(), [3.0, 0.0]);
    let norm = clip_grad_norm(&ps, 1.0).unwrap().unwrap().to_scalar::<f64>().unwrap();
    assert_eq!(norm, 5.0);
    close(&a.tensor.grad().unwrap().to_vec::<f64>().unwrap(), &[0.6 * 5.0 / (5.0 + 1e-6), 0.0]);
    close(&b.tensor.grad().unwrap().to_vec::<f64>().unwrap(), &[0.8 * 5.0 / (5.0 + 1e-6)]);
    assert!(clip_grad_norm(&[param("d", &[1.0])], 1.0).unwrap().is_none());
}

//! Every layer's gradients against finite differences, on tiny f64 sizes.

use plies_autodiff::rng::Rng;
use plies_autodiff::{
    check_gradients, Array, CrossEntropyOpts, DType, Device, Distribution, GradCheck, Result, Tensor,
};
use plies_nn::gradcheck::check_module;
use plies_nn::layers::*;
use plies_nn::loss::{self, CrossEntropy};
use plies_nn::prelude::Reduction;
use plies_nn::{Init, Layer, Module};

fn init() -> Init {
    Init::new(7).with_dtype(DType::F64)
}

fn randn(shape: &[usize], seed: u64) -> Array {
    let key = Rng::new(seed).next_key();
    Array::random(shape, Distribution::Normal { mean: 0.0, std: 1.0 }, key, DType::F64, Device::Cpu).unwrap()
}

fn ids(v: &[i32], shape: &[usize]) -> Array {
    Array::from_slice(v, shape, Device::Cpu).unwrap()
}

/// Check `layer` on input `x` (gradients of its parameters and of x).
fn check_layer(layer: &dyn Layer, x: Array) {
    let r = check_module(layer, &[x], |t| layer.try_forward(&t[0]), GradCheck::default(), usize::MAX);
    r.unwrap();
}

#[test]
fn linear() {
    let mut i = init();
    check_layer(&Linear::new(&mut i, 3, 4, true), randn(&[2, 3], 1));
    check_layer(&Linear::new(&mut i, 3, 2, false), randn(&[2, 2, 3], 2));
}

#[test]
fn embedding() {
    let e = Embedding::new(&mut init(), 5, 3);
    let x = ids(&[0, 4, 4, 2, 1, 0], &[2, 3]);
    check_module(&e, &[x], |t| e.try_forward(&t[0]), GradCheck::default(), usize::MAX).unwrap();
}

#[test]
fn norms() {
    let mut i = init();
    let ln = LayerNorm::new(&mut i, 4);
    // Non-trivial affine parameters so their gradients are exercised away from (1, 0).
    ln.weight.as_ref().unwrap().set_value(randn(&[4], 3)).unwrap();
    ln.bias.as_ref().unwrap().set_value(randn(&[4], 4)).unwrap();
    check_layer(&ln, randn(&[3, 4], 5));
    let rms = RmsNorm::new(&mut i, 4);
    rms.weight.as_ref().unwrap().set_value(randn(&[4], 6)).unwrap();
    check_layer(&rms, randn(&[2, 2, 4], 7));
}

#[test]
fn mlp_and_activations() {
    let mut i = init();
    for act in [Activation::Relu, Activation::GeluTanh, Activation::GeluErf, Activation::Tanh, Activation::Silu] {
        check_layer(&Mlp::new(&mut i, &[3, 5, 2], act), randn(&[4, 3], 8));
    }
}

#[test]
fn attention() {
    let mut i = init();
    let a = CausalSelfAttention::new(&mut i, 6, 2, 0.0, 1.0);
    a.qkv.bias.as_ref().unwrap().set_value(randn(&[18], 9)).unwrap();
    check_layer(&a, randn(&[2, 3, 6], 10));
}

#[test]
fn transformer_block() {
    let cfg = GptConfig { d_model: 4, n_head: 2, n_layer: 1, mlp_ratio: 2, ..GptConfig::char_small() };
    let b = Block::new(&mut init(), &cfg);
    check_layer(&b, randn(&[1, 3, 4], 11));
}

#[test]
fn gpt_with_cross_entropy() {
    let cfg = GptConfig {
        vocab_size: 5,
        context: 4,
        d_model: 4,
        n_layer: 2,
        n_head: 2,
        mlp_ratio: 2,
        ..GptConfig::char_small()
    };
    let g = Gpt::new(&mut init(), cfg);
    let x = ids(&[0, 1, 2, 3, 4, 3], &[2, 3]);
    let y = Tensor::new(ids(&[1, 2, 3, 4, 0, 1], &[2, 3]));
    let f = |t: &[Tensor]| loss::cross_entropy(&g.try_forward(&t[0])?, &y, CrossEntropy::default());
    check_module(&g, &[x], f, GradCheck::default(), 24).unwrap();
}

#[test]
fn conv2d() {
    let mut i = init();
    let win = Window { kernel: (2, 3), stride: (2, 1), padding: (1, 1) };
    check_layer(&Conv2d::with_window(&mut i, 2, 3, win, true), randn(&[2, 2, 4, 3], 12));
    check_layer(&Conv2d::new(&mut i, 1, 2, 3, 1, 0), randn(&[1, 1, 4, 4], 13));
}

#[test]
fn pooling() {
    let x = randn(&[2, 2, 4, 5], 14);
    check_layer(&MaxPool2d::new(2), x.clone());
    let win = Window { kernel: (3, 3), stride: (2, 2), padding: (1, 1) };
    check_layer(&MaxPool2d::with_window(win), x.clone());
    check_layer(&AvgPool2d::with_window(win), x.clone());
    check_layer(&AvgPool2d::new(2), x);
}

#[test]
fn sequential_cnn() {
    let mut i = init();
    let net = Sequential::new()
        .push(Conv2d::new(&mut i, 1, 2, 3, 1, 1))
        .push(Activation::Tanh)
        .push(MaxPool2d::new(2))
        .push(Flatten::default())
        .push(Linear::new(&mut i, 2 * 2 * 2, 3, true));
    check_layer(&net, randn(&[2, 1, 4, 4], 15));
}

#[test]
fn recurrent() {
    let mut i = init();
    check_layer(&Rnn::new(&mut i, 3, 4), randn(&[2, 3, 3], 16));
    check_layer(&Gru::new(&mut i, 3, 4), randn(&[2, 3, 3], 17));
    // The final state and an initial state are differentiable too.
    let gru = Gru::new(&mut i, 2, 3);
    let f = |t: &[Tensor]| -> Result<Tensor> { Ok(gru.try_forward_with(&t[0], Some(&t[1]))?.1) };
    check_module(&gru, &[randn(&[2, 2, 2], 18), randn(&[2, 3], 19)], f, GradCheck::default(), usize::MAX).unwrap();
}

#[test]
fn losses() {
    let logits = randn(&[4, 5], 20);
    let t = Tensor::new(ids(&[1, -100, 4, 0], &[4]));
    for smoothing in [0.0, 0.2] {
        for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            let opts = CrossEntropy { label_smoothing: smoothing, reduction, ..Default::default() };
            check_gradients(|x| loss::cross_entropy(&x[0], &t, opts), std::slice::from_ref(&logits)).unwrap();
        }
    }
    let (a, b) = (randn(&[3, 2], 21), randn(&[3, 2], 22));
    for r in [Reduction::Mean, Reduction::Sum] {
        check_gradients(|x| loss::mse(&x[0], &x[1], r), &[a.clone(), b.clone()]).unwrap();
        check_gradients(|x| loss::l1(&x[0], &x[1], r), &[a.clone(), b.clone()]).unwrap();
    }
    let p = a.sigmoid().unwrap();
    let y = b.sigmoid().unwrap();
    check_gradients(|x| loss::binary_cross_entropy(&x[0], &x[1], Reduction::Mean), &[p, y.clone()]).unwrap();
    check_gradients(|x| loss::binary_cross_entropy_with_logits(&x[0], &x[1], Reduction::Mean), &[a, y]).unwrap();
}

#[test]
fn loss_values_match_definitions() {
    // Cross-entropy with an ignored row averages over the kept rows only.
    let logits = Tensor::from_vec(vec![0.0f64, 0.0, 2.0, 1.0, 1.0, 1.0], [2, 3], Device::Cpu);
    let t = Tensor::new(ids(&[2, -100], &[2]));
    let l = loss::cross_entropy(&logits, &t, CrossEntropy::default()).unwrap().item();
    let want = -(2f64.exp() / (2.0 + 2f64.exp())).ln();
    assert!((l - want).abs() < 1e-12, "{l} vs {want}");
    let opts = CrossEntropyOpts { ignore_index: 7, label_smoothing: 0.0 };
    assert_eq!(opts.ignore_index, 7);
    // BCE of p = 0.5 is ln 2 whatever the target.
    let p = Tensor::from_vec(vec![0.5f64, 0.5], [2], Device::Cpu);
    let y = Tensor::from_vec(vec![0.0f64, 1.0], [2], Device::Cpu);
    let l = loss::binary_cross_entropy(&p, &y, Reduction::Mean).unwrap().item();
    assert!((l - 2f64.ln()).abs() < 1e-12);
    let z = Tensor::from_vec(vec![0.0f64, 0.0], [2], Device::Cpu);
    let l = loss::binary_cross_entropy_with_logits(&z, &y, Reduction::Sum).unwrap().item();
    assert!((l - 2.0 * 2f64.ln()).abs() < 1e-12);
    // L1 and MSE.
    let a = Tensor::from_vec(vec![1.0f64, -2.0], [2], Device::Cpu);
    let b = Tensor::from_vec(vec![0.0f64, 0.0], [2], Device::Cpu);
    assert_eq!(loss::l1(&a, &b, Reduction::Mean).unwrap().item(), 1.5);
    assert_eq!(loss::mse(&a, &b, Reduction::Sum).unwrap().item(), 5.0);
}

/// A layer whose backward is wrong on purpose: half of the weight's use is detached.
struct Broken(Linear);

impl Module for Broken {
    fn visit(&self, s: &mut plies_nn::Scope<'_>) {
        s.child("lin", &self.0);
    }
}

impl Layer for Broken {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.0.weight.try_add(&self.0.weight.detach())?;
        x.try_matmul(&w.try_t()?)
    }
}

#[test]
fn checker_catches_a_wrong_gradient() {
    let b = Broken(Linear::new(&mut init(), 2, 2, false));
    let e = check_module(&b, &[randn(&[3, 2], 23)], |t| b.try_forward(&t[0]), GradCheck::default(), usize::MAX)
        .unwrap_err()
        .to_string();
    assert!(e.contains("parameter `lin.weight`"), "{e}");
}

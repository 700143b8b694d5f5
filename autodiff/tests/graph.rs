//! Graph bookkeeping: what gets recorded, what gets a gradient, what gets freed.

use plies_autodiff::{no_grad, rng::Rng, DType, Device, Tensor};

fn param(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::param(Tensor::randn(shape, 0.0, 1.0, &mut rng, DType::F64, Device::Cpu).value())
}

#[test]
fn no_node_when_nothing_requires_grad() {
    let x = Tensor::ones([3, 4], DType::F32, Device::Cpu);
    let w = Tensor::ones([4, 2], DType::F32, Device::Cpu);
    let y = x.matmul(&w).relu().sum_all();
    assert!(!y.has_graph());
    assert!(!y.requires_grad());
    assert!(y.backward().is_err());

    let p = param(&[4, 2], 1);
    let y = no_grad(|| x.to_dtype(DType::F64).matmul(&p).sum_all());
    assert!(!y.has_graph(), "no_grad must not record");
}

#[test]
fn frozen_parameters_get_no_gradient() {
    let x = param(&[2, 3], 1);
    x.set_requires_grad(false);
    let w1 = param(&[3, 3], 2);
    let w2 = param(&[3, 1], 3);
    w1.set_requires_grad(false);
    let loss = x.matmul(&w1).tanh().matmul(&w2).sum_all();
    loss.backward().unwrap();
    assert!(w1.grad().is_none());
    assert!(x.grad().is_none());
    assert!(w2.grad().is_some());

    // Unfreeze between steps: now both get gradients and nothing stale remains.
    w2.zero_grad();
    w1.set_requires_grad(true);
    let loss = x.matmul(&w1).tanh().matmul(&w2).sum_all();
    loss.backward().unwrap();
    assert!(w1.grad().is_some() && w2.grad().is_some());
}

#[test]
fn gradients_accumulate_until_zeroed() {
    let w = param(&[3], 4);
    for _ in 0..2 {
        w.mul(&w).sum_all().backward().unwrap();
    }
    let g = w.grad().unwrap().to_vec::<f64>().unwrap();
    let v = w.value().to_vec::<f64>().unwrap();
    for (g, v) in g.iter().zip(&v) {
        assert!((g - 4.0 * v).abs() < 1e-12, "two backward calls add 2x + 2x");
    }
    w.zero_grad();
    assert!(w.grad().is_none());
}

#[test]
fn backward_skips_inputs_that_need_nothing() {
    // Only w requires a gradient: the input side must not be differentiated.
    let x = Tensor::ones([2, 3], DType::F64, Device::Cpu);
    let w = param(&[3, 2], 6);
    let y = x.matmul(&w);
    y.sum_all().backward().unwrap();
    assert!(x.grad().is_none());
    assert_eq!(w.grad().unwrap().dims(), &[3, 2]);
}

#[test]
fn shape_errors_name_the_op_and_shapes() {
    let a = Tensor::ones([2, 3], DType::F32, Device::Cpu);
    let b = Tensor::ones([4, 5], DType::F32, Device::Cpu);
    let e = a.try_matmul(&b).unwrap_err().to_string();
    assert_eq!(e, "shape mismatch in matmul: lhs [2, 3], rhs [4, 5]");
    let e = a.try_add(&b).unwrap_err().to_string();
    assert_eq!(e, "cannot broadcast shapes in add: lhs [2, 3], rhs [4, 5]");
    let e = a.try_sum(5, false).unwrap_err().to_string();
    assert_eq!(e, "axis 5 out of range in sum for a tensor of rank 2");
}

//! Memory accounting reads a process-wide counter, so this test lives alone in its own
//! test binary: no other test allocates concurrently.

use plies_autodiff::{rng::Rng, Array, DType, Device, Tensor};

fn param(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::param(Tensor::randn(shape, 0.0, 1.0, &mut rng, DType::F64, Device::Cpu).value())
}

#[test]
fn saved_tensors_are_freed_by_backward() {
    let w = param(&[64, 64], 5);
    let x = Tensor::new(Array::ones([32, 64], DType::F64, Device::Cpu).unwrap());
    let before = plies_core::cpu::live_bytes();
    let mut h = x.clone();
    for _ in 0..4 {
        h = h.matmul(&w).tanh();
    }
    let loss = h.sum_all();
    let during = plies_core::cpu::live_bytes();
    assert!(during > before + 4 * 32 * 64 * 8, "activations are held for backward");
    loss.backward().unwrap();
    drop(h);
    let after = plies_core::cpu::live_bytes();
    // What remains: w's gradient, and the loss value itself.
    let grad_bytes = 64 * 64 * 8;
    assert!(
        after <= before + grad_bytes + 64,
        "backward left {} bytes alive",
        after as i64 - before as i64 - grad_bytes as i64
    );
    // A second backward through the freed graph is an error, not a silent wrong answer.
    assert!(loss.backward().is_err());
}

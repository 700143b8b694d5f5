//! A short training run is bitwise reproducible from its seed on the CPU (dropout,
//! initialisation and data all come from seeded counter-based generators).

use plies_autodiff::rng::Rng;
use plies_autodiff::{Device, Tensor};
use plies_nn::layers::{Gpt, GptConfig};
use plies_nn::loss::{cross_entropy, CrossEntropy};
use plies_nn::optim::{clip_grad_norm, Adam, AdamConfig, Optimizer, Schedule};
use plies_nn::{Init, Layer, Module};

/// Three AdamW steps; returns the losses and every parameter's bits.
fn run(seed: u64) -> (Vec<u64>, Vec<Vec<u32>>) {
    // Big enough that the kernels split work across threads (>= 32K-element tensors).
    let cfg = GptConfig {
        vocab_size: 65,
        context: 32,
        d_model: 64,
        n_layer: 2,
        n_head: 4,
        dropout: 0.1,
        ..GptConfig::char_small()
    };
    let model = Gpt::new(&mut Init::new(seed), cfg);
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::adamw(3e-3, 0.1)).unwrap();
    let sched = Schedule::WarmupCosine { warmup: 1, total: 3, min_factor: 0.1 };
    let mut data = Rng::new(seed ^ 0xda7a);
    let mut losses = Vec::new();
    for step in 0..3 {
        let ids: Vec<i32> = (0..8 * 33).map(|_| data.below(65) as i32).collect();
        let batch = Tensor::from_vec(ids, [8, 33], Device::Cpu);
        let (x, y) = (batch.narrow(1, 0, 32).contiguous(), batch.narrow(1, 1, 32).contiguous());
        let loss = cross_entropy(&model.forward(&x), &y, CrossEntropy::default()).unwrap();
        loss.backward().unwrap();
        clip_grad_norm(&model.named_parameters(), 1.0).unwrap();
        opt.set_lr_factor(sched.factor(step));
        opt.step().unwrap();
        opt.zero_grad();
        losses.push(loss.item().to_bits());
    }
    let params = model.parameters().iter().map(|p| p.to_vec::<f32>().iter().map(|v| v.to_bits()).collect()).collect();
    (losses, params)
}

#[test]
fn three_steps_are_bitwise_reproducible() {
    let a = run(11);
    let b = run(11);
    assert_eq!(a.0, b.0, "losses");
    assert!(a.1 == b.1, "parameters differ between identical runs");
    let c = run(12);
    assert_ne!(a.0, c.0, "another seed gives another run");
}

//! The memory accounting with LoRA: an adapter on the upper layer only leaves the lower layer
//! with no saved activations and no gradients, and the upper layer's gradients are the
//! adapter's A and B.

use plies_autodiff::{Device, Tensor};
use plies_nn::layers::*;
use plies_nn::optim::{Adam, AdamConfig, Optimizer};
use plies_nn::{Init, Layer, MemoryReport, Module};
use plies_peft::lora::{Lora, LoraConfig};

const F32: u64 = 4;
// Batch, input, hidden, output and rank.
const B: u64 = 4;
const IN: u64 = 6;
const H: u64 = 5;
const OUT: u64 = 3;
const R: u64 = 2;

#[test]
fn lora_on_the_upper_layer_only_leaves_the_lower_layer_empty() {
    let m = Mlp::new(&mut Init::new(3), &[IN as usize, H as usize, OUT as usize], Activation::Relu);
    let lora = Lora::new(&m, LoraConfig::new(R as usize, 4.0, &["layers.1"]), &mut Init::new(4)).unwrap();
    assert_eq!(lora.layers().len(), 1);
    let mut opt = Adam::new(m.trainable_parameters(), AdamConfig::adam(1e-2)).unwrap();
    let x: Vec<f32> = (0..B * IN).map(|i| (i as f32 * 0.61).cos()).collect();
    let x = Tensor::from_vec(x, [B as usize, IN as usize], Device::Cpu);
    let y = Tensor::from_vec(vec![2i32, 0, 1, 1], [B as usize], Device::Cpu);

    let adapter = (R * H + OUT * R) * F32;
    for step in 0..2 {
        let loss = m.forward(&x).cross_entropy(&y);
        let r = MemoryReport::measure(&m, Some(&opt), &loss).unwrap();
        let lower = &r.layers[0];
        assert_eq!((lower.saved_bytes, lower.grad_bytes, lower.optimizer_bytes), (0, 0, 0), "step {step}: {lower:?}");
        assert_eq!(lower.param_bytes, (H * IN + H) * F32);
        let upper = &r.layers[1];
        assert_eq!(upper.param_bytes, (OUT * H + OUT) * F32 + adapter);
        assert_eq!(upper.grad_bytes, adapter, "only A and B get gradients");
        assert_eq!(upper.optimizer_bytes, if step == 0 { 0 } else { 2 * adapter });
        // The adapter's first product keeps the layer's input, relu's output [B, H].
        assert!(upper.saved_bytes >= B * H * F32, "{upper:?}");
        loss.backward().unwrap();
        opt.step().unwrap();
        opt.zero_grad();
    }
}

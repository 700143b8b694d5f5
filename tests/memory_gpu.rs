//! `MemoryReport` on the GPU backend: the per-layer figures are the CPU's (same tensors,
//! same sizes) and live/peak come from the GPU backend's own counters. Skipped loudly
//! without an adapter (fails with PLIES_REQUIRE_GPU=1).

#[path = "gpu_common/mod.rs"]
mod common;

use plies::autodiff::{Device, Tensor};
use plies::nn::layers::*;
use plies::nn::optim::{Adam, AdamConfig, Optimizer};
use plies::nn::{Init, Layer, MemoryReport, Module};

fn measure(device: Device) -> MemoryReport {
    plies::init();
    let m = Mlp::new(&mut Init::new(5), &[6, 5, 3], Activation::Relu);
    m.to_device(device).unwrap();
    let mut opt = Adam::new(m.named_parameters(), AdamConfig::adam(1e-2)).unwrap();
    let x: Vec<f32> = (0..24).map(|i| (i as f32 * 0.3).sin()).collect();
    let x = Tensor::from_vec(x, [4, 6], device);
    let y = Tensor::from_vec(vec![0i32, 1, 2, 1], [4], device);
    let mut last = None;
    for _ in 0..2 {
        let loss = m.forward(&x).cross_entropy(&y);
        last = Some(MemoryReport::measure(&m, Some(&opt), &loss).unwrap());
        loss.backward().unwrap();
        opt.step().unwrap();
        opt.zero_grad();
    }
    last.unwrap()
}

#[test]
fn gpu_report_matches_the_cpu_per_layer_and_reads_the_gpu_counters() {
    let Some(gpu) = common::gpu() else { return };
    let (c, g) = (measure(Device::Cpu), measure(gpu));
    assert_eq!(g.layers, c.layers, "per-layer figures on {gpu}");
    assert_eq!(g.outside_saved_bytes, c.outside_saved_bytes);
    assert_eq!(g.device, gpu.to_string());
    let t = g.totals();
    // The GPU holds at least the parameters, Adam's moments and the saved activations now.
    assert!(t.live_bytes >= t.param_bytes + t.optimizer_bytes + t.saved_bytes, "{}", g.table());
    assert!(t.peak_bytes >= t.live_bytes, "{}", g.table());
}

//! `MemoryReport` on small models: every figure against the sizes of the tensors it counts,
//! computed here from the shapes.

use plies_autodiff::{Device, Tensor};
use plies_nn::layers::*;
use plies_nn::optim::{Adam, AdamConfig, Optimizer};
use plies_nn::{Init, Layer, MemoryReport, Module};

const F32: u64 = 4;
const I32: u64 = 4;
// Batch, input, hidden and output sizes of the 2-layer MLP.
const B: u64 = 4;
const IN: u64 = 6;
const H: u64 = 5;
const OUT: u64 = 3;

fn mlp() -> Mlp {
    Mlp::new(&mut Init::new(7), &[IN as usize, H as usize, OUT as usize], Activation::Relu)
}

fn batch() -> (Tensor, Tensor) {
    let x: Vec<f32> = (0..B * IN).map(|i| (i as f32 * 0.37).sin()).collect();
    let x = Tensor::from_vec(x, [B as usize, IN as usize], Device::Cpu);
    let y = Tensor::from_vec(vec![0i32, 2, 1, 2], [B as usize], Device::Cpu);
    (x, y)
}

fn loss(m: &Mlp) -> Tensor {
    let (x, y) = batch();
    m.forward(&x).cross_entropy(&y)
}

fn param_bytes() -> [u64; 2] {
    [(H * IN + H) * F32, (OUT * H + OUT) * F32]
}

/// Layer 0 keeps its input x, x W0^T (for the bias add) and the pre-activation (for relu);
/// layer 1 keeps relu's output and a W1^T. The loss, outside the layers, keeps the logits,
/// the targets, the per-row log-sum-exp and the count of kept rows.
fn saved_bytes() -> ([u64; 2], u64) {
    ([B * IN * F32 + 2 * B * H * F32, B * H * F32 + B * OUT * F32], B * OUT * F32 + B * I32 + B * F32 + F32)
}

#[test]
fn every_figure_of_a_two_layer_mlp_is_the_sum_of_its_tensors() {
    let m = mlp();
    let mut opt = Adam::new(m.named_parameters(), AdamConfig::adam(1e-2)).unwrap();
    // Before the first step Adam holds no state; backward will store one gradient per parameter.
    let l = loss(&m);
    let r = MemoryReport::measure(&m, Some(&opt), &l).unwrap();
    let (saved, outside) = saved_bytes();
    assert_eq!(r.layers.len(), 2);
    for (i, layer) in r.layers.iter().enumerate() {
        assert_eq!(layer.layer, i);
        assert_eq!(layer.param_bytes, param_bytes()[i], "params of layer {i}");
        assert_eq!(layer.grad_bytes, param_bytes()[i], "gradients of layer {i}");
        assert_eq!(layer.optimizer_bytes, 0, "optimizer state of layer {i} before a step");
        assert_eq!(layer.saved_bytes, saved[i], "saved activations of layer {i}");
    }
    assert_eq!(r.outside_saved_bytes, outside);
    let t = r.totals();
    assert_eq!(t.param_bytes, param_bytes().iter().sum::<u64>());
    assert_eq!(t.saved_bytes, saved.iter().sum::<u64>() + outside);
    assert!(t.live_bytes > 0 && t.peak_bytes >= t.live_bytes, "{t:?}");

    // After backward the graph is gone and the gradients are stored; after a step Adam keeps
    // two moments per parameter.
    l.backward().unwrap();
    let after = MemoryReport::measure(&m, Some(&opt), &l).unwrap();
    opt.step().unwrap();
    let stepped = MemoryReport::measure(&m, Some(&opt), &l).unwrap();
    for i in 0..2 {
        assert_eq!(after.layers[i].saved_bytes, 0, "layer {i} after backward");
        assert_eq!(after.layers[i].grad_bytes, param_bytes()[i], "stored gradients of layer {i}");
        assert_eq!(stepped.layers[i].optimizer_bytes, 2 * param_bytes()[i], "Adam state of layer {i}");
    }
    assert_eq!(after.outside_saved_bytes, 0);

    // Without gradients and without an optimizer: no gradient bytes until the next forward.
    opt.zero_grad();
    let bare = MemoryReport::measure(&m, None, &l).unwrap();
    assert!(bare.layers.iter().all(|l| l.grad_bytes == 0 && l.optimizer_bytes == 0), "{bare:?}");

    let table = r.table();
    assert_eq!(table.lines().count(), 1 + 1 + 2 + 1 + 1 + 1, "{table}");
    assert!(table.contains("outside") && table.contains("total") && table.contains("peak"), "{table}");
}

#[test]
fn a_frozen_lower_half_holds_no_activations_and_no_gradients() {
    let m = mlp();
    m.freeze_layer(0).unwrap();
    let opt = Adam::new(m.named_parameters(), AdamConfig::adam(1e-2)).unwrap();
    let l = loss(&m);
    let r = MemoryReport::measure(&m, Some(&opt), &l).unwrap();
    let (saved, outside) = saved_bytes();
    assert_eq!(r.layers[0].saved_bytes, 0);
    assert_eq!(r.layers[0].grad_bytes, 0);
    assert_eq!(r.layers[0].param_bytes, param_bytes()[0]);
    // The upper layer still keeps its input (now a constant) and its product.
    assert_eq!(r.layers[1].saved_bytes, saved[1]);
    assert_eq!(r.layers[1].grad_bytes, param_bytes()[1]);
    assert_eq!(r.outside_saved_bytes, outside);
    l.backward().unwrap();
    let after = MemoryReport::measure(&m, Some(&opt), &l).unwrap();
    assert_eq!(after.layers[0].grad_bytes, 0, "backward stored a gradient in the frozen layer");
}

#[test]
fn a_storage_read_twice_counts_once_and_unscoped_ops_are_outside() {
    // Two ops of one layer reading the same input: the input is counted once.
    let m = mlp();
    let (x, y) = batch();
    let h = {
        let _scope = plies_autodiff::layer_scope(0);
        let a = m.layers[0].forward(&x);
        a.mul(&a)
    };
    let l = m.layers[1].forward(&h).cross_entropy(&y);
    let r = MemoryReport::measure(&m, None, &l).unwrap();
    // Layer 0: x, x W0^T and a (read twice by mul, once counted). Linear 1 ran unscoped.
    assert_eq!(r.layers[0].saved_bytes, B * IN * F32 + 2 * B * H * F32);
    assert_eq!(r.layers[1].saved_bytes, 0);
    assert_eq!(r.outside_saved_bytes, B * H * F32 + B * OUT * F32 + saved_bytes().1);
}

#[test]
fn gpt_activations_land_in_the_layers_visit_assigns() {
    let cfg = GptConfig { vocab_size: 11, context: 8, d_model: 8, n_layer: 2, n_head: 2, ..GptConfig::char_small() };
    let g = Gpt::new(&mut Init::new(0), cfg);
    let ids = Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6, 7, 0], [2, 4], Device::Cpu);
    let targets = Tensor::from_vec(vec![2i32, 3, 4, 5, 6, 7, 0, 1], [2, 4], Device::Cpu);
    let l = g.forward(&ids).cross_entropy(&targets);
    let r = MemoryReport::measure(&g, None, &l).unwrap();
    assert_eq!(r.layers.len(), g.num_layers());
    // The embeddings keep their ids, the blocks and the head their activations. The logits'
    // storage is first held by the head's own reshape to [2, 4, 11], so it is the head's; the
    // loss outside keeps the targets, the log-sum-exp per row and the row count.
    for layer in &r.layers {
        assert!(layer.saved_bytes > 0, "{layer:?}");
    }
    assert_eq!(r.outside_saved_bytes, (8 + 8 + 1) * 4, "{}", r.table());
    let stats = g.layer_stats();
    for (layer, s) in r.layers.iter().zip(&stats) {
        assert_eq!(layer.param_bytes, s.param_bytes as u64, "layer {}", layer.layer);
    }
}

#[path = "scratch/mod.rs"]
mod scratch;

#[test]
fn a_run_logs_the_totals_of_each_step_and_writes_the_last_table() {
    use plies_nn::train::{Progress, Run};
    let dir = scratch::Scratch::new("memory-run");
    let m = mlp();
    let mut opt = Adam::new(m.named_parameters(), AdamConfig::adam(1e-2)).unwrap();
    let mut run = Run::create("mem", &*dir, 2).unwrap().with_progress(Progress::quiet(2));
    let mut last = None;
    for step in 0..2u64 {
        let l = loss(&m);
        let r = MemoryReport::measure(&m, Some(&opt), &l).unwrap();
        l.backward().unwrap();
        opt.step().unwrap();
        opt.zero_grad();
        run.step(step, l.item(), B).unwrap();
        run.memory(step, &r).unwrap();
        last = Some(r);
    }
    run.finish(&[]).unwrap();
    let last = last.unwrap();
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r["event"] == "memory")
        .collect();
    assert_eq!(records.len(), 2);
    let t = last.totals();
    let r = &records[1];
    assert_eq!(r["step"], 1);
    assert_eq!(r["param_bytes"].as_u64(), Some(t.param_bytes));
    assert_eq!(r["optimizer_bytes"].as_u64(), Some(2 * t.param_bytes), "Adam's moments at the second step");
    assert_eq!(r["saved_bytes"].as_u64(), Some(saved_bytes().0.iter().sum::<u64>() + saved_bytes().1));
    assert_eq!(r["peak_bytes"].as_u64(), Some(t.peak_bytes));
    assert_eq!(records[0]["optimizer_bytes"].as_u64(), Some(0));
    assert_eq!(std::fs::read_to_string(dir.join("memory.txt")).unwrap(), last.table());
}

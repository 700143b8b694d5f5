//! LoRA and DoRA training on the GPU against the CPU: a tiny GPT built from one seed, the
//! adapters attached, the model moved with `Module::to_device`, the same AdamW steps on both
//! in f32, and the losses and trained adapter weights compared; then merged on the GPU.
//! Skipped loudly without an adapter (fails with PLIES_REQUIRE_GPU=1).

#[path = "gpu_common/mod.rs"]
mod common;

use common::assert_close;
use plies::autodiff::{no_grad, Device, Tensor};
use plies::core::Result;
use plies::nn::layers::*;
use plies::nn::loss::{cross_entropy, CrossEntropy};
use plies::nn::optim::{Adam, AdamConfig, Optimizer};
use plies::nn::{Init, Layer, Module};
use plies::peft::lora::{Lora, LoraConfig};

fn tiny() -> GptConfig {
    GptConfig {
        vocab_size: 11,
        context: 8,
        d_model: 16,
        n_layer: 2,
        n_head: 2,
        dropout: 0.0,
        ..GptConfig::char_small()
    }
}

fn batch(device: Device) -> (Tensor, Tensor) {
    let seq: Vec<i32> = (0..27).map(|i| (i * 5 + 3) % 11).collect();
    let (x, y): (Vec<i32>, Vec<i32>) =
        (0..3).flat_map(|b| (0..8).map(move |t| (b * 9 + t) as usize)).map(|i| (seq[i], seq[i + 1])).unzip();
    (Tensor::from_vec(x, [3, 8], device), Tensor::from_vec(y, [3, 8], device))
}

/// Losses of `steps` AdamW steps, the trained adapter values, and the logits after merging.
fn train(device: Device, dora: bool, steps: usize) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let model = Gpt::new(&mut Init::new(5), tiny());
    let cfg =
        LoraConfig { use_dora: dora, lora_dropout: 0.1, ..LoraConfig::new(4, 8.0, &["qkv", "proj", "fc1", "fc2"]) };
    let lora = Lora::new(&model, cfg, &mut Init::new(6))?;
    model.to_device(device)?;
    let mut opt = Adam::new(model.trainable_parameters(), AdamConfig::adamw(1e-2, 0.0))?;
    let (x, y) = batch(device);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let loss = cross_entropy(&model.try_forward(&x)?, &y, CrossEntropy::default())?;
        loss.backward()?;
        for p in model.named_parameters() {
            assert_eq!(p.tensor.grad().is_some(), p.name.contains(".lora_"), "{}", p.name);
        }
        opt.step()?;
        opt.zero_grad();
        losses.push(loss.value().to_scalar::<f64>()?);
    }
    let adapters: Vec<f64> =
        model.trainable_parameters().iter().map(|p| p.tensor.try_to_vec::<f64>()).collect::<Result<Vec<_>>>()?.concat();
    model.eval();
    let before = no_grad(|| model.try_forward(&x))?.try_to_vec::<f64>()?;
    lora.merge()?;
    let merged = no_grad(|| model.try_forward(&x))?.try_to_vec::<f64>()?;
    assert_close("merged logits", &merged, &before, 1e-4, 1e-5);
    Ok((losses, adapters, merged))
}

#[test]
fn lora_and_dora_train_the_same_on_gpu_and_cpu() -> Result<()> {
    for dora in [false, true] {
        let steps = 6;
        let (cpu, a_cpu, m_cpu) = train(Device::Cpu, dora, steps)?;
        assert!(cpu[steps - 1] < cpu[0] * 0.95, "dora {dora}: the CPU run learns: {cpu:?}");
        let Some(dev) = common::gpu() else { return Ok(()) };
        let (gpu, a_gpu, m_gpu) = train(dev, dora, steps)?;
        eprintln!("dora {dora} losses cpu {cpu:?}\n                gpu {gpu:?}");
        assert_close("losses", &gpu, &cpu, 1e-4, 1e-5);
        assert_close("adapters", &a_gpu, &a_cpu, 1e-3, 1e-4);
        assert_close("merged logits", &m_gpu, &m_cpu, 1e-3, 1e-4);
    }
    Ok(())
}

/// IST's losses, selections and scores over `steps` steps of a tiny 4-block GPT with LoRA.
#[allow(clippy::type_complexity)]
fn ist_run(device: Device, steps: u64) -> Result<(Vec<f64>, Vec<Vec<usize>>, Vec<f64>)> {
    use plies::peft::select::{Ist, IstConfig, LayerParams, ScaledProbe};
    let model = Gpt::new(&mut Init::new(5), GptConfig { n_layer: 4, ..tiny() });
    let lora = Lora::new(&model, LoraConfig::new(4, 8.0, &["qkv", "proj", "fc1", "fc2"]), &mut Init::new(6))?;
    model.to_device(device)?;
    let layers = LayerParams::trainable(&model)?;
    let mut opt = Adam::new(layers.params(), AdamConfig::adamw(1e-2, 0.0))?;
    let (x, y) = batch(device);
    let mut ist = Ist::new(IstConfig { interval: 2, n_upd: 2, ..IstConfig::paper(4, 3) })?;
    let mut probe = ScaledProbe::new(
        &model,
        &lora,
        || Ok(()),
        |_: &()| Ok(cross_entropy(&model.try_forward(&x)?, &y, CrossEntropy::default())?.item()),
    );
    let (mut losses, mut chosen) = (Vec::new(), Vec::new());
    for step in 0..steps {
        chosen.push(layers.choose(&mut ist, step, &mut probe)?);
        let loss = cross_entropy(&model.try_forward(&x)?, &y, CrossEntropy::default())?;
        loss.backward()?;
        opt.step()?;
        opt.zero_grad();
        losses.push(loss.value().to_scalar::<f64>()?);
    }
    Ok((losses, chosen, ist.scores().to_vec()))
}

#[test]
fn ist_selects_and_trains_the_same_on_gpu_and_cpu() -> Result<()> {
    let (cpu, sel_cpu, s_cpu) = ist_run(Device::Cpu, 8)?;
    assert!(s_cpu.iter().any(|&s| s != 0.0), "scores moved: {s_cpu:?}");
    let Some(dev) = common::gpu() else { return Ok(()) };
    let (gpu, sel_gpu, s_gpu) = ist_run(dev, 8)?;
    eprintln!("ist losses cpu {cpu:?}\n           gpu {gpu:?}\nscores cpu {s_cpu:?} gpu {s_gpu:?}");
    assert_close("losses", &gpu, &cpu, 1e-4, 1e-5);
    assert_close("scores", &s_gpu, &s_cpu, 1e-3, 1e-5);
    assert_eq!(sel_gpu, sel_cpu, "the same layers chosen at every step");
    Ok(())
}

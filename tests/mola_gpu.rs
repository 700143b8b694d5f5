//! MoLA training on the GPU against the CPU: a tiny GPT from one seed, experts attached
//! (allocation 2,3, top-2, dropout 0), the model moved with `Module::to_device`, the same
//! AdamW steps on the cross-entropy plus the balance loss, and the losses, balance losses,
//! routing counts and trained expert weights compared. Skipped loudly without an adapter
//! (fails with PLIES_REQUIRE_GPU=1).

#[path = "gpu_common/mod.rs"]
mod common;

use common::assert_close;
use plies::autodiff::{Device, Tensor};
use plies::core::Result;
use plies::nn::layers::*;
use plies::nn::loss::{cross_entropy, CrossEntropy};
use plies::nn::optim::{Adam, AdamConfig, Optimizer};
use plies::nn::{Init, Layer, Module};
use plies::peft::lora::LoraConfig;
use plies::peft::mola::{Mola, MolaConfig};

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

struct Trace {
    losses: Vec<f64>,
    balance: Vec<f64>,
    counts: Vec<usize>,
    params: Vec<f64>,
}

fn train(device: Device, steps: usize) -> Result<Trace> {
    let model = Gpt::new(&mut Init::new(5), tiny());
    let cfg = MolaConfig::new(LoraConfig::new(4, 8.0, &["qkv", "proj", "fc1", "fc2"]), "2,3")?;
    let mola = Mola::new(&model, cfg, &mut Init::new(6))?;
    model.to_device(device)?;
    let mut opt = Adam::new(model.trainable_parameters(), AdamConfig::adamw(1e-2, 0.0))?;
    let seq: Vec<i32> = (0..27).map(|i| (i * 5 + 3) % 11).collect();
    let (x, y): (Vec<i32>, Vec<i32>) =
        (0..3).flat_map(|b| (0..8).map(move |t| b * 9 + t)).map(|i| (seq[i], seq[i + 1])).unzip();
    let (x, y) = (Tensor::from_vec(x, [3, 8], device), Tensor::from_vec(y, [3, 8], device));
    let mut t = Trace { losses: Vec::new(), balance: Vec::new(), counts: Vec::new(), params: Vec::new() };
    for _ in 0..steps {
        let ce = cross_entropy(&model.try_forward(&x)?, &y, CrossEntropy::default())?;
        for (_, l) in mola.balance_losses()? {
            t.balance.push(l.value().to_scalar::<f64>()?);
        }
        for l in mola.layers() {
            t.counts.extend(l.last_routing().expect("routed").counts);
        }
        let loss = ce.try_add(&mola.aux_loss()?.expect("routed"))?;
        loss.backward()?;
        opt.step()?;
        opt.zero_grad();
        t.losses.push(loss.value().to_scalar::<f64>()?);
    }
    t.params =
        model.trainable_parameters().iter().map(|p| p.tensor.try_to_vec::<f64>()).collect::<Result<Vec<_>>>()?.concat();
    Ok(t)
}

#[test]
fn mola_trains_the_same_on_gpu_and_cpu() -> Result<()> {
    let steps = 6;
    let cpu = train(Device::Cpu, steps)?;
    assert!(cpu.losses[steps - 1] < cpu.losses[0] * 0.97, "the CPU run learns: {:?}", cpu.losses);
    let Some(dev) = common::gpu() else { return Ok(()) };
    let gpu = train(dev, steps)?;
    eprintln!("mola losses cpu {:?}\n            gpu {:?}", cpu.losses, gpu.losses);
    assert_eq!(gpu.counts, cpu.counts, "the same tokens go to the same experts");
    assert_close("losses", &gpu.losses, &cpu.losses, 1e-4, 1e-5);
    assert_close("balance losses", &gpu.balance, &cpu.balance, 1e-4, 1e-5);
    assert_close("experts and routers", &gpu.params, &cpu.params, 1e-3, 1e-4);
    Ok(())
}

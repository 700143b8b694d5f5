//! IST step against the full-LoRA step on the 8-block char GPT (W3's d 128, 4 heads, context
//! 128, batch 16; LoRA r 8, alpha 16 on qkv, proj, fc1, fc2): median step time over 100
//! steps, the gradient and saved-activation bytes of a step (MemoryReport, mean over the
//! steps), and IST's probe overhead (the score update, every T = 10 steps). IST trains
//! n_upd = 2 of 8 blocks per step. No PyTorch twin exists for IST.
//!
//!     cargo bench --bench ist

use plies::autodiff::rng::Rng;
use plies::autodiff::{Device, Result, Tensor};
use plies::nn::layers::{Gpt, GptConfig};
use plies::nn::loss::{cross_entropy, CrossEntropy};
use plies::nn::memory::MemoryReport;
use plies::nn::optim::{Adam, AdamConfig, Optimizer};
use plies::nn::{Init, Layer};
use plies::peft::lora::{Lora, LoraConfig};
use plies::peft::select::{AllLayers, Ist, IstConfig, LayerParams, LayerSelector, NoProbe, Probe, ScaledProbe};
use std::time::Instant;

const STEPS: u64 = 100;

struct Figures {
    median_ms: f64,
    grad_bytes: f64,
    saved_bytes: f64,
    /// Mean seconds of one score update.
    probe_s: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench(use_ist: bool) -> Result<Figures> {
    let device = Device::Cpu;
    let cfg = GptConfig { n_layer: 8, ..GptConfig::char_small() };
    let model = Gpt::new(&mut Init::new(0), cfg.clone());
    let lora = Lora::new(&model, LoraConfig::new(8, 16.0, &["qkv", "proj", "fc1", "fc2"]), &mut Init::new(1))?;
    let layers = LayerParams::trainable(&model)?;
    let mut opt = Adam::new(layers.params(), AdamConfig::adamw(1e-3, 0.0))?;
    let mut rng = Rng::new(2);
    let mut ids = |n: usize| -> Vec<i32> { (0..n).map(|_| rng.below(cfg.vocab_size as u64) as i32).collect() };
    let x = Tensor::from_vec(ids(16 * 128), [16, 128], device);
    let y = Tensor::from_vec(ids(16 * 128), [16, 128], device);
    let mut ist = Ist::new(IstConfig { n_upd: 2, ..IstConfig::paper(8, 3) })?;
    let mut all = AllLayers { layers: 8 };
    let mut probe = ScaledProbe::new(
        &model,
        &lora,
        || Ok(()),
        |_: &()| Ok(cross_entropy(&model.try_forward(&x)?, &y, CrossEntropy::default())?.item()),
    );
    let (mut times, mut grads, mut saved, mut probes) = (Vec::new(), 0.0, 0.0, Vec::new());
    for step in 0..STEPS + 5 {
        let t0 = Instant::now();
        let p: &mut dyn Probe = if use_ist { &mut probe } else { &mut NoProbe };
        let sel: &mut dyn LayerSelector = if use_ist { &mut ist } else { &mut all };
        layers.choose(sel, step, p)?;
        let t_probe = t0.elapsed().as_secs_f64();
        let loss = cross_entropy(&model.try_forward(&x)?, &y, CrossEntropy::default())?;
        let t_measure = Instant::now();
        let report = MemoryReport::measure(&model, Some(&opt), &loss)?;
        let measure_s = t_measure.elapsed().as_secs_f64();
        loss.backward()?;
        opt.step()?;
        opt.zero_grad();
        // The first 5 steps warm caches and create the optimizer state.
        if step >= 5 {
            let t = report.totals();
            grads += t.grad_bytes as f64 / STEPS as f64;
            saved += t.saved_bytes as f64 / STEPS as f64;
            let updated = use_ist && step > 0 && step % 10 == 0;
            if updated {
                probes.push(t_probe);
            }
            // The step time excludes the score update (reported apart) and the measurement.
            times.push((t0.elapsed().as_secs_f64() - if updated { t_probe } else { 0.0 } - measure_s) * 1e3);
        }
    }
    let probe_s = if probes.is_empty() { 0.0 } else { probes.iter().sum::<f64>() / probes.len() as f64 };
    Ok(Figures { median_ms: median(times), grad_bytes: grads, saved_bytes: saved, probe_s })
}

fn main() -> Result<()> {
    let lora = bench(false)?;
    let ist = bench(true)?;
    println!("8-block char GPT, batch 16 x 128, LoRA r8 on qkv/proj/fc1/fc2, {STEPS} steps (median step time)");
    println!("| | step ms | gradient bytes | saved-activation bytes |");
    println!("| --- | --- | --- | --- |");
    println!("| full LoRA | {:.1} | {:.0} | {:.0} |", lora.median_ms, lora.grad_bytes, lora.saved_bytes);
    println!("| IST n_upd 2 | {:.1} | {:.0} | {:.0} |", ist.median_ms, ist.grad_bytes, ist.saved_bytes);
    println!(
        "ratios IST / LoRA: step {:.3}, gradient bytes {:.3}, saved bytes {:.3}",
        ist.median_ms / lora.median_ms,
        ist.grad_bytes / lora.grad_bytes,
        ist.saved_bytes / lora.saved_bytes
    );
    println!(
        "IST probe overhead: {:.1} ms per score update (K = 3 forward passes), {:.1} ms per step averaged over T = 10 \
         ({:.1}% of an IST step)",
        ist.probe_s * 1e3,
        ist.probe_s * 1e2,
        100.0 * ist.probe_s * 1e2 / ist.median_ms
    );
    let ok =
        ist.grad_bytes <= 0.3 * lora.grad_bytes && ist.saved_bytes < lora.saved_bytes && ist.median_ms < lora.median_ms;
    println!(
        "targets (gradient bytes <= 0.3x, saved bytes and step time lower): {}",
        if ok { "met" } else { "NOT met" }
    );
    Ok(())
}

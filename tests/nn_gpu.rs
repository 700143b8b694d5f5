//! The nn stack on the GPU against the CPU: models built from one seed on the CPU, one copy
//! moved to the GPU with `Module::to_device`, the same steps run on both in f32, and the
//! losses, gradients and parameters compared. Covers a tiny GPT trained with AdamW (with
//! dropout, whose masks both devices draw identically), a small CNN with SGD, GRU and RNN
//! forward and backward, models built on the GPU directly, and checkpoints of a GPU model
//! and its optimizer. Skipped loudly without an adapter (fails with PLIES_REQUIRE_GPU=1).

#[path = "gpu_common/mod.rs"]
mod common;

use common::assert_close;
use plies::autodiff::{DType, Device, Tensor};
use plies::core::Result;
use plies::nn::checkpoint::{load_gpt, load_optimizer, save_gpt, save_optimizer};
use plies::nn::layers::*;
use plies::nn::loss::{cross_entropy, CrossEntropy};
use plies::nn::optim::{clip_grad_norm, Adam, AdamConfig, Optimizer, ParamGroup, Sgd, SgdConfig};
use plies::nn::{Init, Layer, Module, NamedParam};
use std::collections::HashMap;

fn tiny_gpt() -> GptConfig {
    GptConfig {
        vocab_size: 11,
        context: 8,
        d_model: 16,
        n_layer: 2,
        n_head: 2,
        mlp_ratio: 4,
        dropout: 0.1,
        activation: Activation::GeluTanh,
        ln_eps: 1e-5,
    }
}

/// Three sequences of 9 tokens following `next = 3 cur + 1 mod 11`: inputs and targets.
fn token_batch(device: Device) -> (Tensor, Tensor) {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for start in [0i32, 4, 9] {
        let seq: Vec<i32> = (0..9).scan(start, |t, _| Some(std::mem::replace(t, (*t * 3 + 1) % 11))).collect();
        x.extend_from_slice(&seq[..8]);
        y.extend_from_slice(&seq[1..]);
    }
    (Tensor::from_vec(x, [3, 8], device), Tensor::from_vec(y, [3, 8], device))
}

/// Arrays by name, read back to the host.
type Named = Vec<(String, Vec<f64>)>;

/// Parameter values by name, read back to the host.
fn values(m: &dyn Module) -> Result<Named> {
    m.state_dict().into_iter().map(|(k, a)| Ok((k, a.to_vec::<f64>()?))).collect()
}

fn grads(m: &dyn Module) -> Result<Named> {
    m.named_parameters()
        .into_iter()
        .map(|p| {
            let g = p.tensor.grad().ok_or_else(|| plies::core::Error::msg(format!("`{}` got no gradient", p.name)))?;
            Ok((p.name, g.to_vec::<f64>()?))
        })
        .collect()
}

fn compare(what: &str, gpu: &[(String, Vec<f64>)], cpu: &[(String, Vec<f64>)], rtol: f64, atol: f64) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: different parameter lists");
    for ((name, g), (cname, c)) in gpu.iter().zip(cpu) {
        assert_eq!(name, cname);
        assert_close(&format!("{what} {name}"), g, c, rtol, atol);
    }
}

/// A tiny GPT built on the CPU from `seed` and moved to `device`, trained `steps` AdamW
/// steps with gradient clipping: the losses and the final parameters.
fn train_gpt(device: Device, steps: usize) -> Result<(Vec<f64>, Named)> {
    let model = Gpt::new(&mut Init::new(7), tiny_gpt());
    model.to_device(device)?;
    assert_eq!(model.device()?, Some(device));
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::adamw(1e-2, 0.01))?;
    let (x, y) = token_batch(device);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let loss = cross_entropy(&model.try_forward(&x)?, &y, CrossEntropy::default())?;
        loss.backward()?;
        clip_grad_norm(&model.named_parameters(), 1.0)?;
        opt.step()?;
        opt.zero_grad();
        losses.push(loss.value().to_scalar::<f64>()?);
    }
    Ok((losses, values(&model)?))
}

#[test]
fn tiny_gpt_trains_the_same_on_gpu_and_cpu() -> Result<()> {
    let steps = 6;
    let (cpu, p_cpu) = train_gpt(Device::Cpu, steps)?;
    assert!(cpu[steps - 1] < cpu[0] * 0.9, "the CPU run learns: {cpu:?}");
    let Some(dev) = common::gpu() else { return Ok(()) };
    let (gpu, p_gpu) = train_gpt(dev, steps)?;
    eprintln!("gpt losses cpu {cpu:?}\n           gpu {gpu:?}");
    assert_close("gpt losses", &gpu, &cpu, 1e-4, 1e-5);
    compare("gpt parameter", &p_gpu, &p_cpu, 1e-3, 1e-4);
    Ok(())
}

#[test]
fn gpt_built_on_the_gpu_matches_the_cpu_build() -> Result<()> {
    let Some(dev) = common::gpu() else { return Ok(()) };
    let cfg = GptConfig { dropout: 0.0, ..tiny_gpt() };
    let cpu = Gpt::new(&mut Init::new(3), cfg.clone());
    let gpu = Gpt::new(&mut Init::new(3).with_device(dev), cfg);
    assert_eq!(gpu.device()?, Some(dev));
    // Uniform draws are bit-identical; normal ones differ by f32 rounding of Box-Muller.
    compare("initial", &values(&gpu)?, &values(&cpu)?, 1e-5, 1e-7);
    let (x, _) = token_batch(Device::Cpu);
    let logits_cpu = cpu.try_forward(&x)?.try_to_vec::<f64>()?;
    let logits_gpu = gpu.try_forward(&x.value().to_device(dev).map(Tensor::new)?)?.try_to_vec::<f64>()?;
    assert_close("logits", &logits_gpu, &logits_cpu, 1e-4, 1e-5);
    Ok(())
}

/// Three parameters in two groups (the second with its own learning rate and no decay),
/// updated by `cfg` for four steps from fixed gradients; the third never gets one. The
/// parameters and the optimizer's state afterwards, by name.
fn adam_run(cfg: AdamConfig, device: Device) -> Result<Named> {
    let param = |name: &str, shape: &[usize], seed: u64| -> Result<NamedParam> {
        let v = common::values(shape.iter().product(), seed, -1.0, 1.0);
        let a = plies::core::Array::from_vec(v, shape.to_vec(), Device::Cpu)?.to_dtype(DType::F32)?;
        Ok(NamedParam { name: name.into(), layer: 0, tensor: Tensor::param(a.to_device(device)?) })
    };
    let (a, b, idle) = (param("a", &[4, 7], 1)?, param("b", &[7], 2)?, param("idle", &[3], 3)?);
    let groups = vec![
        ParamGroup::new(vec![a.clone(), idle.clone()]),
        ParamGroup::new(vec![b.clone()]).lr(3e-2).weight_decay(0.0),
    ];
    let mut opt = Adam::with_groups(groups, cfg)?;
    for step in 0..4u64 {
        for (p, seed) in [(&a, 10), (&b, 20)] {
            let n = p.tensor.value().elem_count();
            // Gradients of changing scale, so that m and v do not settle at once.
            let g = common::values(n, seed + step, -1.0, 1.0).iter().map(|x| x * (1 + step) as f64).collect();
            let g = plies::core::Array::from_vec(g, p.tensor.value().shape().clone(), Device::Cpu)?;
            p.tensor.set_grad(Some(g.to_dtype(DType::F32)?.to_device(device)?));
        }
        opt.step()?;
        opt.zero_grad();
    }
    assert_eq!(opt.step_count("idle"), 0, "a parameter without a gradient gets no state");
    let mut out: Named = [&a, &b, &idle]
        .iter()
        .map(|p| Ok((p.name.clone(), p.tensor.value().to_vec::<f64>()?)))
        .collect::<Result<_>>()?;
    for (k, v) in opt.state_dict() {
        out.push((k, v.to_vec::<f64>()?));
    }
    Ok(out)
}

#[test]
fn adam_and_adamw_updates_match_the_cpu() -> Result<()> {
    let Some(dev) = common::gpu() else { return Ok(()) };
    for (what, cfg) in
        [("adamw", AdamConfig::adamw(1e-2, 0.1)), ("adam", AdamConfig { weight_decay: 0.05, ..AdamConfig::adam(1e-2) })]
    {
        let (gpu, cpu) = (adam_run(cfg, dev)?, adam_run(cfg, Device::Cpu)?);
        let names: Vec<&str> = gpu.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["a", "b", "idle", "a.exp_avg", "a.exp_avg_sq", "a.step", "b.exp_avg", "b.exp_avg_sq", "b.step"]
        );
        // After four steps of lr 1e-2 the parameters moved by ~4e-2: compare those moves
        // to a few f32 ulps of the values.
        compare(what, &gpu, &cpu, 1e-5, 1e-6);
    }
    Ok(())
}

/// Conv2d, max and average pooling, flatten and a Linear head.
fn cnn(init: &mut Init) -> Sequential {
    Sequential::new()
        .push(Conv2d::new(init, 2, 4, 3, 1, 1))
        .push(Activation::Relu)
        .push(MaxPool2d::new(2))
        .push(Conv2d::new(init, 4, 6, 3, 2, 1))
        .push(Activation::Tanh)
        .push(AvgPool2d::new(2))
        .push(Flatten::default())
        .push(Linear::new(init, 6, 5, true))
}

/// The losses of four SGD steps (Nesterov momentum, weight decay) on one CNN batch, the
/// gradients of the first, and the parameters after the last.
type CnnRun = (Vec<f64>, Named, Named);

fn cnn_run(device: Device) -> Result<CnnRun> {
    let model = cnn(&mut Init::new(11));
    model.to_device(device)?;
    let mut rng = plies::autodiff::rng::Rng::new(5);
    let x = Tensor::rand([3, 2, 8, 8], -1.0, 1.0, &mut rng, DType::F32, device);
    let y = Tensor::from_vec(vec![0i32, 3, 4], [3], device);
    let mut opt =
        Sgd::new(model.named_parameters(), SgdConfig::new(0.1).momentum(0.9).nesterov(true).weight_decay(1e-3))?;
    let (mut losses, mut first_grads) = (Vec::new(), None);
    for _ in 0..4 {
        let loss = cross_entropy(&model.try_forward(&x)?, &y, CrossEntropy::default())?;
        loss.backward()?;
        if first_grads.is_none() {
            first_grads = Some(grads(&model)?);
        }
        opt.step()?;
        opt.zero_grad();
        losses.push(loss.value().to_scalar::<f64>()?);
    }
    Ok((losses, first_grads.unwrap(), values(&model)?))
}

#[test]
fn cnn_training_matches_the_cpu() -> Result<()> {
    let Some(dev) = common::gpu() else { return Ok(()) };
    let (loss_c, g_c, p_c) = cnn_run(Device::Cpu)?;
    assert!(loss_c[3] < loss_c[0], "the CPU run learns: {loss_c:?}");
    let (loss_g, g_g, p_g) = cnn_run(dev)?;
    assert_close("cnn losses", &loss_g, &loss_c, 1e-5, 1e-6);
    compare("cnn grad", &g_g, &g_c, 1e-3, 1e-5);
    compare("cnn parameter after SGD", &p_g, &p_c, 1e-4, 1e-5);
    Ok(())
}

/// Outputs, last state, parameter gradients and the input's gradient of an RNN or GRU.
fn recurrent_run(gru: bool, device: Device) -> Result<Named> {
    let init = &mut Init::new(21);
    let (g, r) = (Gru::new(init, 3, 4), Rnn::new(init, 3, 4));
    let module: &dyn Module = if gru { &g } else { &r };
    module.to_device(device)?;
    let mut rng = plies::autodiff::rng::Rng::new(8);
    let x = Tensor::param(Tensor::rand([2, 5, 3], -1.0, 1.0, &mut rng, DType::F32, device).value());
    let h0 = Tensor::param(Tensor::rand([2, 4], -0.5, 0.5, &mut rng, DType::F32, device).value());
    let w = Tensor::rand([2, 5, 4], -1.0, 1.0, &mut rng, DType::F32, device);
    let (out, last) = if gru { g.try_forward_with(&x, Some(&h0))? } else { r.try_forward_with(&x, Some(&h0))? };
    out.try_mul(&w)?.try_sum_all()?.try_add(&last.try_sum_all()?)?.backward()?;
    let mut all = grads(module)?;
    all.push(("output".into(), out.try_to_vec::<f64>()?));
    all.push(("last".into(), last.try_to_vec::<f64>()?));
    all.push(("x.grad".into(), x.grad().unwrap().to_vec::<f64>()?));
    all.push(("h0.grad".into(), h0.grad().unwrap().to_vec::<f64>()?));
    Ok(all)
}

#[test]
fn gru_and_rnn_forward_and_backward_match_the_cpu() -> Result<()> {
    let Some(dev) = common::gpu() else { return Ok(()) };
    for gru in [false, true] {
        let what = if gru { "gru" } else { "rnn" };
        compare(what, &recurrent_run(gru, dev)?, &recurrent_run(gru, Device::Cpu)?, 1e-4, 1e-5);
    }
    Ok(())
}

/// Losses and final parameters of an MLP trained three AdamW steps on `device`.
fn train_mlp(device: Device) -> Result<(Vec<f64>, Named)> {
    let model = Mlp::new(&mut Init::new(4).with_device(device), &[12, 32, 32, 5], Activation::GeluTanh);
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::adamw(1e-2, 0.01))?;
    let mut rng = plies::autodiff::rng::Rng::new(6);
    let x = Tensor::randn([16, 12], 0.0, 1.0, &mut rng, DType::F32, device);
    let y = Tensor::from_vec(common::ints(16, 7, 5), [16], device);
    let mut losses = Vec::new();
    for _ in 0..3 {
        let loss = cross_entropy(&model.try_forward(&x)?, &y, CrossEntropy::default())?;
        loss.backward()?;
        opt.step()?;
        opt.zero_grad();
        losses.push(loss.value().to_scalar::<f64>()?);
    }
    Ok((losses, values(&model)?))
}

/// An MLP trained four steps by AdamW or SGD with momentum, moved to `second` after the first two: the losses
/// and the final parameters.
fn train_moved(adam: bool, second: Device) -> Result<(Vec<f64>, Named)> {
    let model = Mlp::new(&mut Init::new(4), &[12, 32, 5], Activation::Tanh);
    let mut opt: Box<dyn Optimizer> = if adam {
        Box::new(Adam::new(model.named_parameters(), AdamConfig::adamw(1e-2, 0.01))?)
    } else {
        Box::new(Sgd::new(model.named_parameters(), SgdConfig::new(0.1).momentum(0.9))?)
    };
    let mut rng = plies::autodiff::rng::Rng::new(6);
    let x0 = Tensor::randn([16, 12], 0.0, 1.0, &mut rng, DType::F32, Device::Cpu);
    let y0 = Tensor::from_vec(common::ints(16, 7, 5), [16], Device::Cpu);
    let mut losses = Vec::new();
    for step in 0..4 {
        let device = if step < 2 { Device::Cpu } else { second };
        model.to_device(device)?;
        let (x, y) = (x0.value().to_device(device)?, y0.value().to_device(device)?);
        let loss = cross_entropy(&model.try_forward(&Tensor::new(x))?, &Tensor::new(y), CrossEntropy::default())?;
        loss.backward()?;
        opt.step()?;
        opt.zero_grad();
        losses.push(loss.value().to_scalar::<f64>()?);
    }
    assert_eq!(model.device()?, Some(second));
    Ok((losses, values(&model)?))
}

#[test]
fn optimizer_state_follows_a_model_moved_mid_training() -> Result<()> {
    let Some(dev) = common::gpu() else { return Ok(()) };
    for adam in [true, false] {
        let what = if adam { "adamw" } else { "sgd momentum" };
        let (l_moved, p_moved) = train_moved(adam, dev)?;
        let (l_cpu, p_cpu) = train_moved(adam, Device::Cpu)?;
        assert_close(&format!("{what} losses"), &l_moved, &l_cpu, 1e-5, 1e-6);
        compare(&format!("{what} parameters"), &p_moved, &p_cpu, 1e-4, 1e-5);
    }
    Ok(())
}

#[test]
fn bind_group_cache_changes_no_result() -> Result<()> {
    let Some(dev) = common::gpu() else { return Ok(()) };
    let gpu = plies::shaders::gpu_of(dev).expect("an opened GPU");
    // Other tests share this backend: they run correctly either way, only slower.
    gpu.set_bind_group_cache(false);
    let without = train_mlp(dev);
    gpu.set_bind_group_cache(true);
    let (with, without) = (train_mlp(dev)?, without?);
    // No kernel of an MLP step sums with atomics: the same dispatches give the same bits.
    assert_eq!(with, without);
    Ok(())
}

#[test]
fn gpu_checkpoint_round_trip_resumes_training() -> Result<()> {
    let Some(dev) = common::gpu() else { return Ok(()) };
    let cfg = tiny_gpt();
    let model = Gpt::new(&mut Init::new(9).with_device(dev), cfg.clone());
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::adamw(1e-2, 0.01))?;
    let (x, y) = token_batch(dev);
    let step = |m: &Gpt, opt: &mut Adam| -> Result<f64> {
        let loss = cross_entropy(&m.try_forward(&x)?, &y, CrossEntropy::default())?;
        loss.backward()?;
        opt.step()?;
        opt.zero_grad();
        loss.value().to_scalar::<f64>()
    };
    // Dropout draws from each model's own generator, so compare without it.
    model.eval();
    for _ in 0..2 {
        step(&model, &mut opt)?;
    }
    let dir = std::env::temp_dir().join(format!("plies-nn-gpu-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| plies::core::Error::io(&dir, e))?;
    let (mpath, opath) = (dir.join("model.safetensors"), dir.join("adam.safetensors"));
    save_gpt(&model, &mpath, &HashMap::new())?;
    save_optimizer(&opt, &opath)?;

    // Onto the CPU: the same values, bit for bit.
    let (on_cpu, _) = load_gpt(&mpath, &mut Init::new(0))?;
    assert_eq!(on_cpu.device()?, Some(Device::Cpu));
    let (a, b) = (values(&on_cpu)?, values(&model)?);
    assert_eq!(a, b, "a GPU model saved and loaded on the CPU keeps its values");

    // Back onto the GPU with the optimizer: the next step is the one the original takes.
    let (resumed, _) = load_gpt(&mpath, &mut Init::new(0).with_device(dev))?;
    resumed.eval();
    let mut opt2 = Adam::new(resumed.named_parameters(), AdamConfig::adamw(1e-2, 0.01))?;
    load_optimizer(&mut opt2, &opath)?;
    assert_eq!(opt2.step_count("head.weight"), 2);
    let (l1, l2) = (step(&model, &mut opt)?, step(&resumed, &mut opt2)?);
    assert_eq!(l1, l2, "resumed loss (the same forward pass on the same values)");
    // The embedding gradients are summed with atomics in no fixed order, so the update
    // may differ in the last bits on a parallel device.
    compare("parameters after the resumed step", &values(&resumed)?, &values(&model)?, 1e-6, 1e-8);
    std::fs::remove_dir_all(&dir).map_err(|e| plies::core::Error::io(&dir, e))?;
    Ok(())
}

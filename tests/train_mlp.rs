//! Train the same small MLP for a few steps on the GPU and on the CPU, from the same seed,
//! in f32 on both, and compare the losses step by step. Initial weights and inputs come
//! from the counter-based generator, which draws the same bits on both devices.

#[path = "gpu_common/mod.rs"]
mod common;

use plies::autodiff::{no_grad, rng::Rng, Array, DType, Device, Distribution, Tensor};
use plies::core::{AdamWStep, Result};

struct Mlp {
    params: Vec<Tensor>,
    state: Vec<(Array, Array)>,
}

impl Mlp {
    fn new(sizes: &[usize], rng: &mut Rng, device: Device) -> Result<Mlp> {
        let mut params = Vec::new();
        for w in sizes.windows(2) {
            let bound = 1.0 / (w[0] as f64).sqrt();
            let dist = Distribution::Uniform { lo: -bound, hi: bound };
            params.push(Tensor::param(Array::random([w[0], w[1]], dist, rng.next_key(), DType::F32, device)?));
            params.push(Tensor::param(Array::random([w[1]], dist, rng.next_key(), DType::F32, device)?));
        }
        let state =
            params.iter().map(|p| Ok((p.value().zeros_like()?, p.value().zeros_like()?))).collect::<Result<_>>()?;
        Ok(Mlp { params, state })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        let layers = self.params.len() / 2;
        for l in 0..layers {
            h = h.try_matmul(&self.params[2 * l])?.try_add(&self.params[2 * l + 1])?;
            if l + 1 < layers {
                h = h.try_gelu_tanh()?;
            }
        }
        Ok(h)
    }

    fn step(&mut self, step: u64) -> Result<()> {
        let hp = AdamWStep { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, step };
        no_grad(|| {
            for (p, (m, v)) in self.params.iter().zip(self.state.iter_mut()) {
                let g = p.grad().expect("every parameter has a gradient");
                let (np, nm, nv) = p.value().adamw(&g, m, v, hp)?;
                p.set_value(np)?;
                (*m, *v) = (nm, nv);
                p.zero_grad();
            }
            Ok(())
        })
    }
}

/// Losses of `steps` training steps on `device`.
fn train(device: Device, steps: u64) -> Result<(Vec<f64>, Vec<f32>)> {
    let mut rng = Rng::new(2024);
    let (n, d, classes) = (96, 20, 5);
    let x = Tensor::new(Array::random(
        [n, d],
        Distribution::Uniform { lo: -1.0, hi: 1.0 },
        rng.next_key(),
        DType::F32,
        device,
    )?);
    let labels: Vec<i32> = (0..n).map(|i| ((i * 7 + i / 3) % classes) as i32).collect();
    let y = Tensor::new(Array::from_vec(labels, [n], device)?);
    let mut mlp = Mlp::new(&[d, 32, 32, classes], &mut rng, device)?;
    let mut losses = Vec::new();
    for step in 1..=steps {
        let loss = mlp.forward(&x)?.try_cross_entropy(&y)?;
        loss.backward()?;
        losses.push(loss.value().to_scalar::<f64>()?);
        mlp.step(step)?;
    }
    Ok((losses, mlp.params[0].value().to_vec::<f32>()?))
}

#[test]
fn mlp_trains_the_same_on_gpu_and_cpu() -> Result<()> {
    let (cpu, w_cpu) = train(Device::Cpu, 12)?;
    assert!(cpu.last().unwrap() < &(cpu[0] * 0.9), "the CPU run learns: {cpu:?}");
    let Some(dev) = common::gpu() else { return Ok(()) };
    let (gpu, w_gpu) = train(dev, 12)?;
    for (step, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
        assert!((g - c).abs() <= 1e-4 * (1.0 + c.abs()), "step {}: gpu loss {g} vs cpu {c}", step + 1);
    }
    let worst = w_gpu.iter().zip(&w_cpu).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "first-layer weights differ by {worst} after training");
    eprintln!("losses cpu {cpu:?}\n       gpu {gpu:?}");
    Ok(())
}

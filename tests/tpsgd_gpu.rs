//! The local-target trainer (tpSGD and DRTP) on the GPU against the CPU: the same nets built
//! from one seed, one copy moved to the GPU, the same batches, and the losses and parameters
//! compared after a few steps. Skipped loudly without an adapter (fails with
//! PLIES_REQUIRE_GPU=1).

#[path = "gpu_common/mod.rs"]
mod common;

use common::assert_close;
use plies::autodiff::{Device, Tensor};
use plies::core::Result;
use plies::nn::layers::Activation;
use plies::nn::optim::{Adam, AdamConfig, Optimizer};
use plies::nn::{Init, Module, NamedParam};
use plies::peft::tpsgd::{LocalConfig, LocalNet, LocalTrainer};

fn adam(p: Vec<NamedParam>) -> Result<Box<dyn Optimizer>> {
    Ok(Box::new(Adam::new(p, AdamConfig::adam(1e-2))?))
}

/// Four steps of `config` on `net` (moved to `device`) over fixed batches: every step's task
/// and local losses, then the parameters.
fn train(net: LocalNet, config: LocalConfig, shape: &[usize], device: Device) -> Result<(Vec<f64>, Vec<Vec<f64>>)> {
    net.to_device(device)?;
    let mut trainer = LocalTrainer::new(&net, 10, config, &mut adam)?;
    let n: usize = shape.iter().product();
    let mut losses = Vec::new();
    for step in 0..4 {
        let x: Vec<f32> = (0..n).map(|i| (((i + 13 * step) * 37 % 101) as f32) / 101.0).collect();
        let y: Vec<i32> = (0..shape[0]).map(|i| ((i + step) % 10) as i32).collect();
        let x = Tensor::from_vec(x, shape, Device::Cpu).try_to_device(device)?;
        let y = Tensor::from_vec(y, [shape[0]], Device::Cpu).try_to_device(device)?;
        let r = trainer.step(&net, &x, &y)?;
        losses.push(r.task_loss);
        losses.extend(r.local_losses.iter().flatten());
        assert_eq!(r.activation_bytes.is_some(), device == Device::Cpu, "measured on the CPU only");
    }
    let params = net.state_dict().into_iter().map(|(_, a)| a.to_vec::<f64>()).collect::<Result<Vec<_>>>()?;
    Ok((losses, params))
}

#[test]
fn local_training_on_the_gpu_matches_the_cpu() -> Result<()> {
    let Some(gpu) = common::gpu() else { return Ok(()) };
    type Build = fn() -> LocalNet;
    let nets: [(&str, Build, &[usize]); 3] = [
        ("mlp", || LocalNet::mlp(&mut Init::new(1), &[12, 16, 16, 10], Activation::Tanh).unwrap(), &[8, 12]),
        ("cnn", || LocalNet::cnn(&mut Init::new(2), 1, (8, 8), &[4, 6], 10, Activation::Relu).unwrap(), &[6, 1, 8, 8]),
        ("rnn", || LocalNet::rnn(&mut Init::new(3), 5, 8, 10), &[6, 4, 5]),
    ];
    for (name, build, shape) in nets {
        for config in [LocalConfig::tpsgd(7), LocalConfig::drtp(7)] {
            let (cl, cp) = train(build(), config, shape, Device::Cpu)?;
            let (gl, gp) = train(build(), config, shape, gpu)?;
            let what = format!("{name} {:?}", config.rule);
            assert_close(&format!("{what} losses"), &gl, &cl, 1e-4, 1e-5);
            for (i, (g, c)) in gp.iter().zip(&cp).enumerate() {
                assert_close(&format!("{what} parameter {i}"), g, c, 1e-3, 1e-4);
            }
        }
    }
    Ok(())
}

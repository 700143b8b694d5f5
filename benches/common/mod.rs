//! The models, batches and training step of W2, W3, W4 and MoLA (BENCHMARKS.md), shared by the
//! benches that time them (nn.rs) and the one that watches their memory (soak/).

use plies::autodiff::rng::Rng;
use plies::autodiff::{DType, Device, Result, Tensor};
use plies::nn::layers::{Activation, Gpt, GptConfig, Mlp};
use plies::nn::loss::{cross_entropy, CrossEntropy};
use plies::nn::optim::{Adam, AdamConfig, Optimizer};
use plies::nn::{Init, Layer, MemoryReport, Module};
use plies::peft::lora::{Lora, LoraConfig};
use plies::peft::mola::{Mola, MolaConfig};

/// A model with its AdamW and one fixed batch, all on one device.
pub struct Workload {
    pub model: Box<dyn Layer>,
    pub opt: Adam,
    pub x: Tensor,
    pub y: Tensor,
    /// MoLA's experts, whose balance loss the step adds to the cross-entropy.
    pub mola: Option<Mola>,
}

impl Workload {
    /// W2: MLP 64-256-256-10, ReLU, batch 128.
    pub fn w2(device: Device) -> Result<Workload> {
        let model = Mlp::new(&mut Init::new(0).with_device(device), &[64, 256, 256, 10], Activation::Relu);
        let opt = Adam::new(model.named_parameters(), AdamConfig::adamw(1e-3, 0.01))?;
        let mut rng = Rng::new(1);
        let x = Tensor::randn([128, 64], 0.0, 1.0, &mut rng, DType::F32, device);
        let y = Tensor::from_vec((0..128).map(|_| rng.below(10) as i32).collect(), [128], device);
        Ok(Workload { model: Box::new(model), opt, x, y, mola: None })
    }

    /// W3: the char GPT (826,433 parameters), batch 16.
    pub fn w3(device: Device) -> Result<Workload> {
        let w = Workload::gpt(GptConfig::char_small(), 16, device)?;
        assert_eq!(w.model.num_params(), 826_433, "W3 parameter count");
        Ok(w)
    }

    /// W4: W3's model with LoRA r=8 (alpha 16, dropout 0) on the attention and MLP
    /// projections, base frozen; AdamW over the 65,536 adapter parameters only.
    #[allow(dead_code)] // the soak bench does not run it
    pub fn w4(device: Device) -> Result<Workload> {
        let mut w = Workload::w3(device)?;
        // The adapted layers hold the adapters; the handle is needed only to attach them.
        Lora::new(w.model.as_ref(), LoraConfig::new(8, 16.0, &["qkv", "proj", "fc1", "fc2"]), &mut Init::new(2))?;
        let trainable = w.model.trainable_parameters();
        let n: usize = trainable.iter().map(|p| p.tensor.elem_count()).sum();
        assert_eq!(n, 65_536, "W4 trainable parameter count");
        w.model.to_device(device)?;
        w.opt = Adam::new(trainable, AdamConfig::adamw(1e-3, 0.01))?;
        Ok(w)
    }

    /// MoLA on W3's model: r=4 (alpha 8, dropout 0) experts, top-2, on the attention and
    /// MLP projections, `experts` per block ("2,4,6,8"), base frozen; the loss adds
    /// 0.001 times the summed balance losses.
    #[allow(dead_code)] // the soak bench does not run it
    pub fn mola(device: Device, experts: &str) -> Result<Workload> {
        let mut w = Workload::w3(device)?;
        let cfg = MolaConfig::new(LoraConfig::new(4, 8.0, &["qkv", "proj", "fc1", "fc2"]), experts)?;
        let mola = Mola::new(w.model.as_ref(), cfg, &mut Init::new(2))?;
        let trainable = w.model.trainable_parameters();
        let n: usize = trainable.iter().map(|p| p.tensor.elem_count()).sum();
        // Per block and expert: routers 128 + 128 + 128 + 512, experts 4 (in + out) each.
        let per_expert = 896 + 4 * ((128 + 384) + (128 + 128) + (128 + 512) + (512 + 128));
        let total: usize = mola.allocation().iter().map(|&(_, e)| e).sum();
        assert_eq!(n, per_expert * total, "MoLA {experts} trainable parameter count");
        w.model.to_device(device)?;
        w.opt = Adam::new(trainable, AdamConfig::adamw(1e-3, 0.01))?;
        w.mola = Some(mola);
        Ok(w)
    }

    /// A GPT of `config` on a batch of `batch` random token sequences (targets shifted by one).
    pub fn gpt(config: GptConfig, batch: usize, device: Device) -> Result<Workload> {
        let (t, v) = (config.context, config.vocab_size);
        let model = Gpt::new(&mut Init::new(0).with_device(device), config);
        let opt = Adam::new(model.named_parameters(), AdamConfig::adamw(1e-3, 0.01))?;
        let mut rng = Rng::new(1);
        let ids: Vec<i32> = (0..batch * (t + 1)).map(|_| rng.below(v as u64) as i32).collect();
        let ids = Tensor::from_vec(ids, [batch, t + 1], device);
        let (x, y) = (ids.try_narrow(1, 0, t)?.try_contiguous()?, ids.try_narrow(1, 1, t)?.try_contiguous()?);
        Ok(Workload { model: Box::new(model), opt, x, y, mola: None })
    }

    /// One AdamW step like [`step`](Self::step), measuring what it holds between forward
    /// and backward (after a first step, the optimizer state is counted).
    #[allow(dead_code)] // the soak bench does not report tables
    pub fn measured_step(&mut self) -> Result<MemoryReport> {
        let loss = cross_entropy(&self.model.try_forward(&self.x)?, &self.y, CrossEntropy::default())?;
        let report = MemoryReport::measure(self.model.as_ref(), Some(&self.opt), &loss)?;
        loss.backward()?;
        self.opt.step()?;
        self.opt.zero_grad();
        Ok(report)
    }

    /// One AdamW step: forward, loss, backward, update, zero_grad. Returns the loss.
    pub fn step(&mut self) -> Result<Tensor> {
        let mut loss = cross_entropy(&self.model.try_forward(&self.x)?, &self.y, CrossEntropy::default())?;
        if let Some(aux) = self.mola.as_ref().map(|m| m.aux_loss()).transpose()?.flatten() {
            loss = loss.try_add(&aux)?;
        }
        loss.backward()?;
        self.opt.step()?;
        self.opt.zero_grad();
        Ok(loss)
    }
}

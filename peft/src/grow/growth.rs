//! Growth: blocks are stacked on a GPT a few at a time. A stage adds its blocks on top,
//! freezes everything below them, and trains only the new blocks and the output head (final
//! LayerNorm and head). The token embedding is the frozen glyph substrate throughout; the
//! learned position table trains with the first stage (before it nothing below exists to
//! fit) and is frozen with the blocks after it.

use plies_autodiff::{Result, Tensor};
use plies_nn::checkpoint::{load_gpt, save_gpt};
use plies_nn::data::Batch;
use plies_nn::layers::Gpt;
use plies_nn::loss::{cross_entropy, CrossEntropy};
use plies_nn::optim::Optimizer;
use plies_nn::{Init, Layer, LayerStats, Module, NamedParam};
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Metadata key of the stage count in a growth checkpoint.
pub const STAGE_KEY: &str = "plies.grow.stage";

/// Add `blocks` new blocks on top of `model`, freeze everything else except the final norm
/// and head (and the position table when the model had no block yet), and return the
/// parameters this stage trains, for a fresh optimizer. Block indices of the new blocks are
/// the returned range.
pub fn grow(model: &mut Gpt, init: &mut Init, blocks: usize) -> Result<(Range<usize>, Vec<NamedParam>)> {
    let first = model.blocks.len();
    model.for_each_param(&mut |p| {
        p.tensor.set_requires_grad(false);
    });
    for _ in 0..blocks {
        model.push_block(init);
    }
    model.unfreeze("ln_f")?;
    model.unfreeze("head")?;
    if first == 0 {
        model.unfreeze("pos_emb")?;
    }
    Ok((first..model.blocks.len(), model.trainable_parameters()))
}

/// One optimizer step of next-token cross-entropy on `batch`; returns the loss.
pub fn lm_step(model: &dyn Layer, opt: &mut dyn Optimizer, batch: &Batch) -> Result<f64> {
    opt.zero_grad();
    let loss = lm_loss(model, batch)?;
    loss.backward()?;
    opt.step()?;
    Ok(loss.item())
}

/// Mean next-token cross-entropy of `model` on `batch` (logits `[b, t, vocab]`).
pub fn lm_loss(model: &dyn Layer, batch: &Batch) -> Result<Tensor> {
    let logits = model.try_forward(&batch.inputs)?;
    let d = logits.dims().to_vec();
    let flat = logits.try_reshape([d[0] * d[1], d[2]])?;
    let targets = batch.targets.try_reshape([d[0] * d[1]])?;
    cross_entropy(&flat, &targets, CrossEntropy::default())
}

/// What a stage costs: per-layer parameters, trainable parameters, gradient and optimizer
/// bytes (taken after a step, while the gradients are held), and their totals.
#[derive(Clone, Debug)]
pub struct StageCost {
    pub layers: Vec<LayerStats>,
    pub params: usize,
    pub trainable: usize,
    /// Bytes of the trainable parameters, their gradients and their optimizer state: what a
    /// stage's update touches, beside `frozen_bytes` that it only reads.
    pub train_bytes: usize,
    pub frozen_bytes: usize,
}

impl StageCost {
    pub fn of(model: &dyn Module, opt: &dyn Optimizer) -> StageCost {
        let mut layers = model.layer_stats();
        opt.add_state_bytes(&mut layers);
        let mut cost = StageCost { layers, params: 0, trainable: 0, train_bytes: 0, frozen_bytes: 0 };
        for s in &cost.layers {
            cost.params += s.params;
            cost.trainable += s.trainable;
            let per = s.param_bytes.checked_div(s.params).unwrap_or(0);
            cost.train_bytes += s.trainable * per + s.grad_bytes + s.optimizer_bytes;
            cost.frozen_bytes += (s.params - s.trainable) * per;
        }
        cost
    }

    /// One line per layer: `layer 2: 50,240 params, 50,240 trainable, grads 196 KiB, optimizer 392 KiB`.
    pub fn table(&self) -> String {
        let kib = |b: usize| format!("{:.0} KiB", b as f64 / 1024.0);
        let lines: Vec<String> = self
            .layers
            .iter()
            .map(|s| {
                format!(
                    "layer {}: {} params, {} trainable, grads {}, optimizer {}",
                    s.layer,
                    s.params,
                    s.trainable,
                    kib(s.grad_bytes),
                    kib(s.optimizer_bytes)
                )
            })
            .collect();
        lines.join("\n")
    }
}

/// Save a stage's model as `dir/stage{stage}.safetensors` (a `save_gpt` file with the stage
/// count and any `extra` metadata, such as the vocabulary).
pub fn save_stage(
    model: &Gpt,
    dir: impl AsRef<Path>,
    stage: usize,
    extra: &HashMap<String, String>,
) -> Result<PathBuf> {
    let path = dir.as_ref().join(format!("stage{stage}.safetensors"));
    let mut meta = extra.clone();
    meta.insert(STAGE_KEY.into(), stage.to_string());
    save_gpt(model, &path, &meta)?;
    Ok(path)
}

/// Load a stage checkpoint; the token embedding comes back frozen (the substrate), every
/// other parameter trainable, as `load_gpt` leaves it, until the next [`grow`].
pub fn load_stage(path: impl AsRef<Path>, init: &mut Init) -> Result<(Gpt, HashMap<String, String>)> {
    let (model, meta) = load_gpt(path, init)?;
    model.freeze("tok_emb")?;
    Ok((model, meta))
}

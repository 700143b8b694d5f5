//! A character-level GPT (the W3 model: d 128, 4 layers, 4 heads, context 128, pre-LayerNorm
//! blocks with a GELU MLP of 4d, learned positions) trained with AdamW on the embedded
//! Shakespeare text (Sonnets, Macbeth, The Tempest; the last tenth is the validation text).
//! It evaluates the validation loss on fixed windows as it goes, saves the model with its
//! configuration and vocabulary, and ends with a text sample and the result line.
//!
//!     cargo run --release --example char_gpt
//!     cargo run --release --example char_gpt -- --steps 3000 --seed 1 --out runs/gpt --text my.txt
//!
//! The output folder (`runs/char_gpt`) gets `metrics.jsonl`, `loss.png` and
//! `model.safetensors`. PyTorch loads that checkpoint into the same architecture and computes
//! the validation loss on the same windows (the example prints this command with its figures):
//!
//!     python3 bench/torch_load_checkpoint.py runs/char_gpt/model.safetensors \
//!         --text data/shakespeare.txt --val-fraction 0.1 --max-windows 256 --expect <val_loss>
//!
//! The validation windows are those of `CharDataset::windows`: starts 0, c, 2c, ... of the
//! validation text, each c + 1 characters long (c = context), the first `--val-windows` of them.
//!
//! `--save-every 100` saves the training state (model, AdamW moments, the batch sampler's
//! generator, the metrics) every 100 steps; `--resume runs/char_gpt` goes on from the last one.

use clap::Parser;
use plies::autodiff::rng::Rng;
use plies::autodiff::{Error, Result};
use plies::nn::checkpoint::{save_gpt, TrainState};
use plies::nn::data::{CharDataset, Dataset};
use plies::nn::optim::{clip_grad_norm, ParamGroup};
use plies::nn::prelude::*;
use plies::nn::train::{CommonArgs, Run, Value};
use std::collections::HashMap;
use std::path::PathBuf;

/// A character-level GPT on the embedded Shakespeare text
#[derive(Parser, Clone, Debug)]
#[command(name = "char_gpt")]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Train on this UTF-8 text file instead of the embedded Shakespeare
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// The fraction at the end of the text held out for validation
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// How many validation windows to evaluate on (at most all of them)
    #[arg(long, default_value_t = 256)]
    pub val_windows: usize,
    /// Evaluate every this many steps
    #[arg(long, default_value_t = 100)]
    pub eval_every: u64,
    /// Report the time at which the validation loss first falls below this (nats per char)
    #[arg(long, default_value_t = 2.0)]
    pub target_loss: f64,
    /// Model width
    #[arg(long, default_value_t = 128)]
    pub d_model: usize,
    /// Transformer blocks
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    /// Attention heads (must divide --d-model)
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// Context length in characters
    #[arg(long, default_value_t = 128)]
    pub context: usize,
    /// Sequences per step
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Peak learning rate (linear warmup, then cosine decay to a tenth)
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// AdamW weight decay (on matrices and embeddings)
    #[arg(long, default_value_t = 0.1)]
    pub weight_decay: f64,
    /// Characters to sample at the end
    #[arg(long, default_value_t = 400)]
    pub sample_chars: usize,
    /// Sampling temperature
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    /// The text the sample continues
    #[arg(long, default_value = "\n")]
    pub prompt: String,
}

impl Args {
    /// The default number of steps (`--steps` overrides it).
    pub const STEPS: u64 = 1000;
}

fn main() {
    // Registers the GPU backend, so that `--device gpu` (or PLIES_DEVICE=gpu) can open it.
    plies::init();
    let args = Args::parse();
    args.common.open_device_or_exit();
    match train(&args) {
        Ok(outcome) => {
            eprintln!("validation loss {:.6}; to check it with PyTorch:\n  {}", outcome.val_loss, outcome.torch_check);
            println!("{}", outcome.sample);
            println!("{}", outcome.result_line);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// What a run leaves behind besides its output folder.
pub struct Outcome {
    pub losses: Vec<f64>,
    pub val_loss: f64,
    pub checkpoint: PathBuf,
    /// The command that has PyTorch load the checkpoint and recompute `val_loss`.
    pub torch_check: String,
    pub sample: String,
    pub result_line: String,
}

/// Mean cross-entropy (nats per character) over the first `max_windows` validation windows.
pub fn val_loss(model: &Gpt, val: &CharDataset, max_windows: usize, batch_size: usize, device: Device) -> Result<f64> {
    let windows = val.windows(model.config.context)?;
    let first: Vec<usize> = (0..windows.len().min(max_windows)).collect();
    let sum = CrossEntropy { reduction: Reduction::Sum, ..Default::default() };
    let (mut total, mut count) = (0.0, 0);
    model.eval();
    for indices in first.chunks(batch_size) {
        let batch = windows.batch(indices, device)?;
        total += no_grad(|| loss::cross_entropy(&model.try_forward(&batch.inputs)?, &batch.targets, sum))?.item();
        count += batch.targets.elem_count();
    }
    model.train(true);
    Ok(total / count as f64)
}

/// `chars` characters continuing `prompt`, drawn one at a time from the softmax of the last
/// logits divided by `temperature`.
pub fn sample(
    model: &Gpt,
    data: &CharDataset,
    prompt: &str,
    chars: usize,
    temperature: f64,
    rng: &mut Rng,
) -> Result<String> {
    let vocab = data.vocab();
    let mut ids = vocab.encode(prompt)?;
    let device = model.tok_emb.weight.device();
    model.eval();
    for _ in 0..chars {
        let window = &ids[ids.len().saturating_sub(model.config.context)..];
        let x = Tensor::try_from_vec(window.to_vec(), [1, window.len()], device)?;
        let logits = no_grad(|| model.try_forward(&x))?.try_narrow(1, window.len() - 1, 1)?;
        let logits: Vec<f32> = logits.try_to_vec()?;
        let top = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let weights: Vec<f64> = logits.iter().map(|&l| ((l as f64 - top) / temperature).exp()).collect();
        let mut u = rng.uniform_f64() * weights.iter().sum::<f64>();
        let next = weights.iter().position(|&w| {
            u -= w;
            u < 0.0
        });
        ids.push(next.unwrap_or(weights.len() - 1) as i32);
    }
    model.train(true);
    vocab.decode(&ids)
}

pub fn train(args: &Args) -> Result<Outcome> {
    let (steps, device, seed) = (args.common.steps_or(Args::STEPS), args.common.device, args.common.seed);
    let data = match &args.text {
        Some(path) => CharDataset::from_file(path)?,
        None => CharDataset::shakespeare(),
    };
    let (train_text, val_text) = data.split(args.val_fraction)?;
    let config = GptConfig {
        vocab_size: data.vocab_size(),
        context: args.context,
        d_model: args.d_model,
        n_layer: args.layers,
        n_head: args.heads,
        ..GptConfig::char_small()
    };
    if args.heads == 0 || !args.d_model.is_multiple_of(args.heads) {
        return Err(Error::invalid(
            "char_gpt",
            format!("--d-model {} is not a multiple of --heads {}", args.d_model, args.heads),
        ));
    }
    let model = Gpt::new(&mut Init::new(seed).with_device(device), config.clone());

    // Weight decay on the matrices and embeddings only, not on biases and LayerNorms (as nanoGPT).
    let (matrices, others) = model.named_parameters().into_iter().partition(|p| p.tensor.rank() >= 2);
    let groups = vec![ParamGroup::new(matrices), ParamGroup::new(others).weight_decay(0.0)];
    let mut opt = Adam::with_groups(groups, AdamConfig::adamw(args.lr, args.weight_decay))?;
    let schedule =
        Schedule::WarmupCosine { warmup: 100.min(steps as usize / 10), total: steps as usize, min_factor: 0.1 };

    let out = args.common.out_dir("char_gpt");
    let (mut run, state) = Run::start("char_gpt", &args.common, steps, &model, &mut opt)?;
    run.config(&[
        ("steps", steps.into()),
        ("seed", seed.into()),
        ("device", device.to_string().into()),
        ("model", config.to_json().into()),
        ("params", model.num_params().into()),
        ("batch_size", args.batch_size.into()),
        ("lr", args.lr.into()),
        ("weight_decay", args.weight_decay.into()),
        ("train_chars", train_text.len().into()),
        ("val_chars", val_text.len().into()),
    ])?;

    let mut rng = state.rng_or("batches", Rng::new(seed))?;
    let mut reached: Option<(u64, f64)> = match (state.value("steps_to_target"), state.value("seconds_to_target")) {
        (Some(steps), Some(secs)) => Some((steps as u64, secs)),
        _ => None,
    };
    // The losses of the whole run, those before a resume included.
    let mut losses: Vec<f64> = state.metrics.train.iter().map(|&(_, loss)| loss).collect();
    let mut val =
        state.metrics.evals.iter().find(|(n, _)| n == "val_loss").and_then(|(_, s)| s.last()).map_or(f64::NAN, |p| p.1);
    for step in state.step..steps {
        let batch = train_text.random_batch(args.batch_size, args.context, &mut rng, device)?;
        let loss = loss::cross_entropy(&model.try_forward(&batch.inputs)?, &batch.targets, CrossEntropy::default())?;
        loss.backward()?;
        clip_grad_norm(&model.trainable_parameters(), 1.0)?;
        opt.set_lr_factor(schedule.factor(step as usize));
        opt.step()?;
        opt.zero_grad();
        losses.push(loss.item());
        run.step(step, loss.item(), (args.batch_size * args.context) as u64)?;
        if (step + 1) % args.eval_every == 0 || step + 1 == steps {
            val = val_loss(&model, &val_text, args.val_windows, args.batch_size, device)?;
            if reached.is_none() && val < args.target_loss {
                reached = Some((step + 1, run.elapsed().as_secs_f64()));
            }
            run.eval(step, &[("val_loss", val)])?;
        }
        if run.save_due(step + 1) {
            let mut saved = TrainState::at(step + 1).with_rng("batches", &rng);
            if let Some((steps, secs)) = reached {
                saved = saved.with_value("steps_to_target", steps as f64).with_value("seconds_to_target", secs);
            }
            run.save_state(saved, &model, &opt)?;
        }
    }
    let train_seconds = run.elapsed().as_secs_f64();

    let checkpoint = out.join("model.safetensors");
    let vocab: String = data.vocab().chars().iter().collect();
    let meta = HashMap::from([
        ("vocab".to_string(), serde_json::to_string(&vocab).map_err(|e| Error::msg(e.to_string()))?),
        ("val_fraction".to_string(), args.val_fraction.to_string()),
        ("val_windows".to_string(), args.val_windows.to_string()),
        ("val_loss".to_string(), val.to_string()),
    ]);
    save_gpt(&model, &checkpoint, &meta)?;
    let text = args.text.clone().unwrap_or_else(|| PathBuf::from("data/shakespeare.txt"));
    let torch_check = format!(
        "python3 bench/torch_load_checkpoint.py {} --text {} --val-fraction {} --max-windows {} --expect {val}",
        checkpoint.display(),
        text.display(),
        args.val_fraction,
        args.val_windows
    );

    let sample = sample(&model, &data, &args.prompt, args.sample_chars, args.temperature, &mut Rng::new(seed ^ 0x5a3))?;
    let result_line = run.finish(&[
        ("final_train_loss", losses.last().copied().unwrap_or(f64::NAN).into()),
        ("val_loss", val.into()),
        ("target_loss", args.target_loss.into()),
        // null when the target was not reached
        ("steps_to_target", reached.map_or(Value::Float(f64::NAN), |r| r.0.into())),
        ("seconds_to_target", reached.map_or(f64::NAN, |r| (r.1 * 10.0).round() / 10.0).into()),
        ("train_seconds", ((train_seconds * 10.0).round() / 10.0).into()),
        ("checkpoint", checkpoint.display().to_string().into()),
    ])?;
    Ok(Outcome { losses, val_loss: val, checkpoint, torch_check, sample, result_line })
}

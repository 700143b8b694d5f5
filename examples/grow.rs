//! Growing a character GPT block by block on a frozen glyph substrate (Bochkov 2025), on the
//! committed Shakespeare text:
//!
//!     cargo run --release --example grow
//!     cargo run --release --example grow -- --stage-steps 600 --out runs/grow
//!
//! Runs, all from the same seed, batch order and AdamW settings:
//! - grown: a GPT with no block on the glyph substrate gets `--blocks-per-stage` blocks per
//!   stage for `--stages` stages; each stage trains only its new blocks and the head (the
//!   position table trains in the first stage), for `--stage-steps` steps, with a fresh
//!   optimizer; a checkpoint per stage (`stage{k}.safetensors`).
//! - end_to_end_glyph: the final-depth model trained whole on the same frozen substrate, for
//!   the same number of steps (so the same training tokens) as all the stages together.
//! - end_to_end_learned: the same, with a learned token embedding (the usual GPT).
//! - Composition: the text's first and second halves (different plays) each train a
//!   specialist (`--specialist-blocks` blocks on the substrate, `--specialist-steps` steps);
//!   their logit-averaged mixture is evaluated, untrained, beside each specialist on each
//!   half's validation windows and on their union.
//!
//! Validation loss: mean cross-entropy over the first `--eval-windows` non-overlapping windows
//! of the held-out tail (last `--val-fraction` of the text, or of each half). Memory: trainable
//! parameters per step and the bytes a step's update holds (trainable parameters, gradients
//! and AdamW state, from the per-layer accounting), and the peak bytes of live CPU storage
//! during a step above what was live before the run (activations included; CPU only).
//!
//! The output folder (`runs/grow`) gets `metrics.jsonl`, `loss.png` (every run's training loss,
//! one after another), `val.png` (validation loss against training tokens), the stage
//! checkpoints and `results.md`; the last line on stdout is the result.

use clap::Parser;
use plies::autodiff::rng::Rng;
use plies::autodiff::{no_grad, Error, Result};
use plies::nn::data::{CharDataset, Dataset};
use plies::nn::prelude::*;
use plies::nn::train::{CommonArgs, LinePlot, Run, Value};
use plies::peft::grow::{glyph_gpt, grow, lm_loss, save_stage, LogitMixture, StageCost};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

#[derive(Parser, Clone, Debug)]
#[command(about = "grow a char GPT block by block on frozen glyph embeddings; compare and mix")]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[arg(long, default_value_t = 3)]
    pub stages: usize,
    #[arg(long, default_value_t = 2)]
    pub blocks_per_stage: usize,
    /// Steps per growth stage (--steps, when given, sets it instead)
    #[arg(long, default_value_t = 300)]
    pub stage_steps: u64,
    #[arg(long, default_value_t = 64)]
    pub d_model: usize,
    #[arg(long, default_value_t = 4)]
    pub n_head: usize,
    #[arg(long, default_value_t = 64)]
    pub context: usize,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 100)]
    pub eval_every: u64,
    #[arg(long, default_value_t = 64)]
    pub eval_windows: usize,
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    #[arg(long, default_value_t = 2)]
    pub specialist_blocks: usize,
    #[arg(long, default_value_t = 300)]
    pub specialist_steps: u64,
}

fn main() {
    plies::init();
    let args = Args::parse();
    args.common.open_device_or_exit();
    match train(&args) {
        Ok(outcome) => println!("{}", outcome.result_line),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// One training run (or one stage's share of the grown run).
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    pub name: String,
    pub losses: Vec<f64>,
    /// (training tokens so far, validation loss).
    pub val: Vec<(u64, f64)>,
    /// Trainable parameters of each stage (one entry for a run trained whole).
    pub trainable: Vec<usize>,
    /// Bytes an update holds per stage (trainable parameters, gradients, optimizer state).
    pub train_bytes: Vec<usize>,
    pub peak_bytes: u64,
    pub secs: f64,
}

impl RunStats {
    pub fn final_val(&self) -> f64 {
        self.val.last().map_or(f64::NAN, |v| v.1)
    }
}

pub struct Outcome {
    pub result_line: String,
    pub grown: RunStats,
    /// Validation loss at the end of each stage.
    pub stage_val: Vec<f64>,
    pub glyph: RunStats,
    pub learned: RunStats,
    /// Rows: specialist A, specialist B, mixture; columns: val A, val B, union.
    pub mixture: [[f64; 3]; 3],
}

struct Ctx<'a> {
    args: &'a Args,
    run: Run,
    global: u64,
    device: Device,
}

fn config(args: &Args, vocab: usize, blocks: usize) -> GptConfig {
    GptConfig {
        vocab_size: vocab,
        context: args.context,
        d_model: args.d_model,
        n_layer: blocks,
        n_head: args.n_head,
        mlp_ratio: 4,
        dropout: 0.0,
        activation: Activation::GeluTanh,
        ln_eps: 1e-5,
    }
}

/// Mean validation loss over the first `windows` windows of `data` (weighted by window).
fn val_loss(model: &dyn Layer, data: &CharDataset, args: &Args, device: Device) -> Result<(f64, usize)> {
    let w = data.windows(args.context)?;
    let n = w.len().min(args.eval_windows);
    let mut sum = 0.0;
    for start in (0..n).step_by(args.batch_size) {
        let idx: Vec<usize> = (start..n.min(start + args.batch_size)).collect();
        let batch = w.batch(&idx, device)?;
        sum += no_grad(|| lm_loss(model, &batch))?.item() * idx.len() as f64;
    }
    Ok((sum / n as f64, n))
}

/// Train `model`'s trainable parameters for `steps` steps on `data` (a fresh AdamW), logging
/// to the run and evaluating on `val` every `eval_every` steps and at the end.
fn train_steps(
    cx: &mut Ctx<'_>,
    model: &Gpt,
    data: &CharDataset,
    val: &CharDataset,
    steps: u64,
    rng: &mut Rng,
    stats: &mut RunStats,
) -> Result<StageCost> {
    let args = cx.args;
    let params = model.trainable_parameters();
    let mut opt = Adam::new(params, AdamConfig::adamw(args.lr, 0.01))?;
    let tokens_per_step = (args.batch_size * args.context) as u64;
    let baseline = plies::core::cpu::live_bytes();
    let mut cost = None;
    let started = Instant::now();
    for step in 0..steps {
        let batch = data.random_batch(args.batch_size, args.context, rng, cx.device)?;
        opt.zero_grad();
        let loss = lm_loss(model, &batch)?;
        let before_backward = plies::core::cpu::live_bytes();
        loss.backward()?;
        opt.step()?;
        let after_step = plies::core::cpu::live_bytes();
        stats.peak_bytes = stats.peak_bytes.max(before_backward.max(after_step).saturating_sub(baseline));
        if cost.is_none() {
            cost = Some(StageCost::of(model, &opt));
        }
        let l = loss.item();
        stats.losses.push(l);
        cx.run.step(cx.global, l, tokens_per_step)?;
        cx.global += 1;
        if (step + 1) % args.eval_every == 0 || step + 1 == steps {
            let (v, _) = val_loss(model, val, args, cx.device)?;
            let tokens = stats.losses.len() as u64 * tokens_per_step;
            stats.val.push((tokens, v));
            cx.run.eval(cx.global, &[(&format!("{}_val_loss", stats.name), v)])?;
        }
    }
    stats.secs += started.elapsed().as_secs_f64();
    let cost = cost.ok_or_else(|| Error::invalid("grow", "a run needs at least one step"))?;
    stats.trainable.push(cost.trainable);
    stats.train_bytes.push(cost.train_bytes);
    Ok(cost)
}

pub fn train(args: &Args) -> Result<Outcome> {
    let device = args.common.device;
    if args.stages == 0 || args.blocks_per_stage == 0 || args.specialist_blocks == 0 || args.eval_every == 0 {
        return Err(Error::invalid(
            "grow",
            "needs --stages, --blocks-per-stage, --specialist-blocks and --eval-every >= 1",
        ));
    }
    if !args.d_model.is_multiple_of(args.n_head) {
        return Err(Error::invalid(
            "grow",
            format!("--n-head {} does not divide --d-model {}", args.n_head, args.d_model),
        ));
    }
    let stage_steps = args.common.steps_or(args.stage_steps).max(1);
    let spec_steps = args.common.steps.unwrap_or(args.specialist_steps).max(1);
    let seed = args.common.seed;
    let depth = args.stages * args.blocks_per_stage;
    let text = CharDataset::shakespeare();
    let (fit, val) = text.split(args.val_fraction)?;
    let chars = text.vocab().chars().to_vec();
    let vocab = text.vocab_size();
    let total = 3 * stage_steps * args.stages as u64 + 2 * spec_steps;
    let run = Run::create("grow", args.common.out_dir("grow"), total)?;
    let mut cx = Ctx { args, run, global: 0, device };
    cx.run.config(&[
        ("device", device.to_string().into()),
        ("d_model", args.d_model.into()),
        ("context", args.context.into()),
        ("depth", depth.into()),
        ("stages", args.stages.into()),
        ("stage_steps", stage_steps.into()),
        ("batch_size", args.batch_size.into()),
        ("lr", args.lr.into()),
        ("seed", seed.into()),
        ("vocab", vocab.into()),
    ])?;

    // Grown: stage by stage on the substrate.
    let mut init = Init::new(seed).with_device(device);
    let mut model = glyph_gpt(&mut init, config(args, vocab, 0), &chars, DType::F32, device)?;
    let mut rng = Rng::new(seed ^ 0xba7c);
    let mut grown = RunStats { name: "grown".into(), ..Default::default() };
    let mut stage_val = Vec::new();
    let mut costs = Vec::new();
    let meta: HashMap<String, String> = [("vocab".to_string(), chars.iter().collect::<String>())].into();
    for stage in 1..=args.stages {
        let (new, _) = grow(&mut model, &mut init, args.blocks_per_stage)?;
        let cost = train_steps(&mut cx, &model, &fit, &val, stage_steps, &mut rng, &mut grown)?;
        stage_val.push(grown.final_val());
        let path = save_stage(&model, cx.run.dir(), stage, &meta)?;
        cx.run.println(format!(
            "stage {stage}: blocks {}..{} trained, val loss {:.4}, {} trainable of {} params, saved {}\n{}",
            new.start,
            new.end,
            grown.final_val(),
            cost.trainable,
            cost.params,
            path.display(),
            cost.table()
        ));
        costs.push(cost);
    }
    drop(model);

    // End to end at the final depth, same steps in all.
    let whole = stage_steps * args.stages as u64;
    let mut glyph = RunStats { name: "end_to_end_glyph".into(), ..Default::default() };
    let mut init = Init::new(seed).with_device(device);
    let m = glyph_gpt(&mut init, config(args, vocab, depth), &chars, DType::F32, device)?;
    train_steps(&mut cx, &m, &fit, &val, whole, &mut Rng::new(seed ^ 0xba7c), &mut glyph)?;
    drop(m);
    let mut learned = RunStats { name: "end_to_end_learned".into(), ..Default::default() };
    let m = Gpt::new(&mut Init::new(seed).with_device(device), config(args, vocab, depth));
    train_steps(&mut cx, &m, &fit, &val, whole, &mut Rng::new(seed ^ 0xba7c), &mut learned)?;
    drop(m);

    // Specialists on the two halves, and their mixture.
    let (part_a, part_b) = text.split(0.5)?;
    let (fit_a, val_a) = part_a.split(args.val_fraction)?;
    let (fit_b, val_b) = part_b.split(args.val_fraction)?;
    let mut members = Vec::new();
    for (name, fit_p, val_p) in [("specialist_a", &fit_a, &val_a), ("specialist_b", &fit_b, &val_b)] {
        let mut init = Init::new(seed).with_device(device);
        let m = glyph_gpt(&mut init, config(args, vocab, args.specialist_blocks), &chars, DType::F32, device)?;
        let mut s = RunStats { name: name.into(), ..Default::default() };
        train_steps(&mut cx, &m, fit_p, val_p, spec_steps, &mut Rng::new(seed ^ 0x5bec), &mut s)?;
        members.push(m);
    }
    let mix = LogitMixture::new(members)?;
    let mut table = [[0.0; 3]; 3];
    let row = |m: &dyn Layer| -> Result<[f64; 3]> {
        let (a, na) = val_loss(m, &val_a, args, device)?;
        let (b, nb) = val_loss(m, &val_b, args, device)?;
        Ok([a, b, (a * na as f64 + b * nb as f64) / (na + nb) as f64])
    };
    table[0] = row(&mix.members[0])?;
    table[1] = row(&mix.members[1])?;
    table[2] = row(&mix)?;

    let report = results_md(args, stage_steps, spec_steps, &grown, &stage_val, &costs, &glyph, &learned, &table);
    let dir = cx.run.dir().to_path_buf();
    std::fs::write(dir.join("results.md"), &report)
        .map_err(|e| Error::msg(format!("writing {}: {e}", dir.join("results.md").display())))?;
    let mut plot = LinePlot::new("grow: validation loss").x_label("training tokens").y_label("val loss");
    for r in [&grown, &glyph, &learned] {
        plot = plot.series(r.name.clone(), r.val.iter().map(|&(t, v)| (t as f64, v)));
    }
    plot.write_png(dir.join("val.png"))?;
    cx.run.println(&report);
    let falls = stage_val.windows(2).all(|w| w[1] < w[0]);
    let result_line = cx.run.finish(&[
        ("grown_val_loss", grown.final_val().into()),
        ("grown_stage_val_losses", Value::Str(fmt_list(&stage_val))),
        ("grown_val_falls_every_stage", falls.into()),
        ("end_to_end_glyph_val_loss", glyph.final_val().into()),
        ("end_to_end_learned_val_loss", learned.final_val().into()),
        ("specialist_a_union_loss", table[0][2].into()),
        ("specialist_b_union_loss", table[1][2].into()),
        ("mixture_union_loss", table[2][2].into()),
    ])?;
    Ok(Outcome { result_line, grown, stage_val, glyph, learned, mixture: table })
}

fn fmt_list(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(",")
}

#[allow(clippy::too_many_arguments)]
fn results_md(
    args: &Args,
    stage_steps: u64,
    spec_steps: u64,
    grown: &RunStats,
    stage_val: &[f64],
    costs: &[StageCost],
    glyph: &RunStats,
    learned: &RunStats,
    mix: &[[f64; 3]; 3],
) -> String {
    let kib = |b: usize| format!("{:.0}", b as f64 / 1024.0);
    let mut s = String::new();
    let depth = args.stages * args.blocks_per_stage;
    let _ = writeln!(s, "# Growth on a frozen glyph substrate\n");
    let _ = writeln!(
        s,
        "Shakespeare (committed text), d {}, {} heads, context {}, batch {}, AdamW lr {}, {} on {}.",
        args.d_model, args.n_head, args.context, args.batch_size, args.lr, depth, args.common.device
    );
    let _ = writeln!(
        s,
        "Grown: {} stages of {} blocks, {} steps each; end-to-end runs: {} steps ({} tokens each run).\n",
        args.stages,
        args.blocks_per_stage,
        stage_steps,
        stage_steps * args.stages as u64,
        stage_steps * args.stages as u64 * (args.batch_size * args.context) as u64
    );
    let _ = writeln!(s, "## Stages of the grown model\n");
    let _ = writeln!(s, "| stage | blocks | val loss | trainable params | update KiB | frozen KiB |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for (k, (v, c)) in stage_val.iter().zip(costs).enumerate() {
        let _ = writeln!(
            s,
            "| {} | {} | {:.4} | {} | {} | {} |",
            k + 1,
            (k + 1) * args.blocks_per_stage,
            v,
            c.trainable,
            kib(c.train_bytes),
            kib(c.frozen_bytes)
        );
    }
    let _ = writeln!(s, "\n## Runs at the same number of training tokens\n");
    let _ = writeln!(s, "| run | val loss | trainable params per step | update KiB | peak step KiB | time s |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for r in [grown, glyph, learned] {
        let list = |v: &[usize]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" / ");
        let bytes: Vec<usize> = r.train_bytes.iter().map(|b| b / 1024).collect();
        let _ = writeln!(
            s,
            "| {} | {:.4} | {} | {} | {} | {:.1} |",
            r.name,
            r.final_val(),
            list(&r.trainable),
            list(&bytes),
            kib(r.peak_bytes as usize),
            r.secs
        );
    }
    let _ = writeln!(
        s,
        "\n## Specialists and their logit-averaged mixture ({} blocks, {} steps each, no training for the mixture)\n",
        args.specialist_blocks, spec_steps
    );
    let _ = writeln!(s, "| model | val first half | val second half | union |");
    let _ = writeln!(s, "|---|---|---|---|");
    for (name, r) in ["specialist A (first half)", "specialist B (second half)", "mixture"].iter().zip(mix) {
        let _ = writeln!(s, "| {name} | {:.4} | {:.4} | {:.4} |", r[0], r[1], r[2]);
    }
    s
}

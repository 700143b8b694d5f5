//! MoLA allocations at equal total experts on a 4-layer char GPT: do more experts in the
//! higher layers help (Gao et al., "higher layers need more LoRA experts")?
//!
//!     cargo run --release --example mola
//!     cargo run --release --example mola -- --full
//!
//! A base GPT is pretrained on the Sonnets and Macbeth (the committed `data/shakespeare.txt`
//! up to The Tempest) and cached in the output folder. Then, for each allocation (experts per
//! block, 20 in all: 8642, 2468, 5555, 8228, 2882) and each seed, MoLA experts (r 4, alpha
//! 8, top-2, on qkv, proj, fc1 and fc2, balance loss coefficient 0.001) train on the frozen
//! base for two tasks:
//!
//! - (a) distillation: the teacher is the base plus a rank-4 change to every projection of
//!   the upper two blocks (relative Frobenius norm `--plant-scale`); the student minimises
//!   KL(teacher || student) on batches of the pretraining text; reported: the eval KL on
//!   fixed windows of that text's last tenth;
//! - (b) fine-tuning on The Tempest (its first 90%); reported: the cross-entropy on fixed
//!   windows of its last tenth.
//!
//! Seeds are paired: seed s gives every allocation the same batch order and the same draws
//! for the experts' initialisation stream. Nothing is tuned on the evaluation windows: the
//! learning rate and step counts are fixed before any run. Besides the final loss, each run
//! reports each layer's redundancy (mean pairwise Frobenius distance of the experts'
//! (alpha/r) B A; the paper finds it smaller in lower layers), each layer's expert usage
//! (normalised entropy of the assignment counts, 1 = uniform) and the balance loss over
//! training. The output folder (`runs/mola`) gets `metrics.jsonl`, `loss.png`,
//! `balance_<task>.png`, `redundancy_<task>.png`, `train_<task>.png` and `results.md`; the
//! last line on stdout is the result.

use clap::Parser;
use plies::autodiff::rng::Rng;
use plies::autodiff::{Error, Result};
use plies::nn::checkpoint::{load_gpt, save_gpt};
use plies::nn::data::{Batch, CharDataset, Dataset};
use plies::nn::prelude::*;
use plies::nn::train::{CommonArgs, LinePlot, Run, Value};
use plies::peft::lora::LoraConfig;
use plies::peft::mola::{Mola, MolaConfig};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Parser, Clone, Debug)]
#[command(about = "MoLA expert allocations on a 4-layer char GPT: distillation and The Tempest")]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The larger settings of the closing note's tables (d 128, context 128, batch 16,
    /// 2000 pretraining steps, 600 steps per run)
    #[arg(long)]
    pub full: bool,
    /// Seeds per allocation: --seed, --seed + 1, ...
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Allocations (experts per block), separated by `;`
    #[arg(long, value_delimiter = ';', default_value = "8,6,4,2;2,4,6,8;5,5,5,5;8,2,2,8;2,8,8,2")]
    pub allocations: Vec<String>,
    /// Model width [default: 64, --full 128]
    #[arg(long)]
    pub d_model: Option<usize>,
    /// Context in characters [default: 64, --full 128]
    #[arg(long)]
    pub context: Option<usize>,
    /// Sequences per step [default: 8, --full 16]
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Pretraining steps of the base [default: 400, --full 2000]
    #[arg(long)]
    pub pretrain_steps: Option<u64>,
    /// Steps per MoLA run (--steps does the same) [default: 120, --full 600]
    #[arg(long)]
    pub run_steps: Option<u64>,
    /// Evaluation windows per task [default: 32, --full 128]
    #[arg(long)]
    pub eval_windows: Option<usize>,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    #[arg(long, default_value_t = 4)]
    pub rank: usize,
    #[arg(long, default_value_t = 8.0)]
    pub alpha: f64,
    #[arg(long, default_value_t = 2)]
    pub top_k: usize,
    /// AdamW learning rate of the experts and routers (fixed, not tuned)
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// The planted change's Frobenius norm relative to each weight's (at 0.5 the teacher
    /// differs from the base by only 3e-4 nats/char: the small blocks add little to the
    /// residual stream; 4 gives about 0.15)
    #[arg(long, default_value_t = 4.0)]
    pub plant_scale: f64,
}

/// The settings a run uses, after `--full` and the flags.
#[derive(Clone, Debug)]
pub struct Settings {
    pub d_model: usize,
    pub context: usize,
    pub batch: usize,
    pub pretrain_steps: u64,
    pub steps: u64,
    pub eval_windows: usize,
}

impl Args {
    pub fn settings(&self) -> Settings {
        let f = self.full;
        Settings {
            d_model: self.d_model.unwrap_or(if f { 128 } else { 64 }),
            context: self.context.unwrap_or(if f { 128 } else { 64 }),
            batch: self.batch_size.unwrap_or(if f { 16 } else { 8 }),
            pretrain_steps: self.pretrain_steps.unwrap_or(if f { 2000 } else { 400 }),
            steps: self.common.steps.or(self.run_steps).unwrap_or(if f { 600 } else { 120 }),
            eval_windows: self.eval_windows.unwrap_or(if f { 128 } else { 32 }),
        }
    }
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Distill,
    Tempest,
}

pub const TASKS: [Task; 2] = [Task::Distill, Task::Tempest];

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Distill => "distill",
            Task::Tempest => "tempest",
        }
    }

    fn metric(self) -> &'static str {
        match self {
            Task::Distill => "eval KL (nats/char)",
            Task::Tempest => "val loss (nats/char)",
        }
    }
}

/// One allocation, task and seed.
#[derive(Clone, Debug)]
pub struct RunStats {
    pub task: Task,
    pub allocation: String,
    pub seed: u64,
    pub final_loss: f64,
    /// The training objective (KL or cross-entropy) per step.
    pub train: Vec<f64>,
    /// The mean over layers of the balance loss per step.
    pub balance: Vec<f64>,
    /// Per block: redundancy, usage entropy (normalised), usage counts.
    pub redundancy: Vec<f64>,
    pub usage_entropy: Vec<f64>,
    pub usage: Vec<Vec<u64>>,
    pub seconds: f64,
}

pub struct Outcome {
    pub runs: Vec<RunStats>,
    /// The base model's eval KL to the teacher and its Tempest val loss (no experts).
    pub base_kl: f64,
    pub base_tempest: f64,
    pub result_line: String,
}

/// The texts: pretraining (train, eval) and The Tempest (train, val), one vocabulary.
pub struct Texts {
    pub data: CharDataset,
    pub pre: (CharDataset, CharDataset),
    pub tempest: (CharDataset, CharDataset),
}

pub fn texts() -> Result<Texts> {
    let data = CharDataset::shakespeare();
    let text: String = data.vocab().decode(data.tokens())?;
    let at = text
        .find("THE TEMPEST\n")
        .ok_or_else(|| Error::msg("mola: data/shakespeare.txt has no `THE TEMPEST` heading"))?;
    let tail = (text.len() - at) as f64 / text.len() as f64;
    let (pre, tempest) = data.split(tail)?;
    Ok(Texts { pre: pre.split(0.1)?, tempest: tempest.split(0.1)?, data })
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn sd(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len().max(2) - 1) as f64).sqrt()
}

fn gpt_config(s: &Settings, vocab: usize, heads: usize) -> GptConfig {
    GptConfig {
        vocab_size: vocab,
        context: s.context,
        d_model: s.d_model,
        n_layer: 4,
        n_head: heads,
        dropout: 0.0,
        ..GptConfig::char_small()
    }
}

/// The pretrained base, from `dir/base.safetensors` when it was saved with these settings,
/// else trained (AdamW 3e-3, warmup and cosine, seed 0) and saved there.
pub fn base(args: &Args, s: &Settings, texts: &Texts, dir: &Path, run: &mut Run) -> Result<std::path::PathBuf> {
    let path = dir.join("base.safetensors");
    let device = args.common.device;
    let cfg = gpt_config(s, texts.data.vocab_size(), args.heads);
    let key = format!("{} steps {}", cfg.to_json(), s.pretrain_steps);
    if path.is_file() {
        if let Ok((_, meta)) = load_gpt(&path, &mut Init::new(0)) {
            if meta.get("pretrained").map(String::as_str) == Some(key.as_str()) {
                run.println(format!("base: cached {}", path.display()));
                return Ok(path);
            }
        }
    }
    let model = Gpt::new(&mut Init::new(0).with_device(device), cfg);
    let mut opt = Adam::new(model.trainable_parameters(), AdamConfig::adamw(3e-3, 0.1))?;
    let steps = s.pretrain_steps as usize;
    let schedule = Schedule::WarmupCosine { warmup: 50.min(steps / 10), total: steps, min_factor: 0.1 };
    let mut rng = Rng::new(0);
    for step in 0..s.pretrain_steps {
        let b = texts.pre.0.random_batch(s.batch, s.context, &mut rng, device)?;
        let loss = loss::cross_entropy(&model.try_forward(&b.inputs)?, &b.targets, CrossEntropy::default())?;
        loss.backward()?;
        opt.set_lr_factor(schedule.factor(step as usize));
        opt.step()?;
        opt.zero_grad();
        if step % 20 == 0 || step + 1 == s.pretrain_steps {
            run.log(&[("event", "pretrain".into()), ("step", step.into()), ("loss", loss.item().into())])?;
        }
    }
    let ce = eval_ce(&model, &texts.pre.1, s, device)?;
    run.println(format!("base: {} pretraining steps, eval cross-entropy {ce:.3} nats/char", s.pretrain_steps));
    save_gpt(&model, &path, &HashMap::from([("pretrained".to_string(), key)]))?;
    Ok(path)
}

fn load(path: &Path, device: Device) -> Result<Gpt> {
    let (g, _) = load_gpt(path, &mut Init::new(0))?;
    g.to_device(device)?;
    g.eval();
    Ok(g)
}

/// The teacher: the base with `W += c U V` on qkv, proj, fc1 and fc2 of the upper two blocks,
/// U `[out, 4]` and V `[4, in]` standard normal (seed 77), c making the change's Frobenius
/// norm `scale` times W's.
pub fn teacher(path: &Path, scale: f64, device: Device) -> Result<Gpt> {
    let g = load(path, device)?;
    let mut rng = Rng::new(77);
    let n = g.blocks.len();
    for b in &g.blocks[n - 2..] {
        for lin in [&b.attn.qkv, &b.attn.proj, &b.mlp.fc1, &b.mlp.fc2] {
            let w = &lin.weight;
            let (o, i) = (w.dims()[0], w.dims()[1]);
            let u = Tensor::randn([o, 4], 0.0, 1.0, &mut rng, w.dtype(), device);
            let v = Tensor::randn([4, i], 0.0, 1.0, &mut rng, w.dtype(), device);
            let delta = u.value().matmul(&v.value())?;
            let norm = |a: &plies::autodiff::Array| -> Result<f64> {
                Ok(a.mul(a)?.sum(plies::autodiff::AllAxes, false)?.to_scalar::<f64>()?.sqrt())
            };
            let c = scale * norm(&w.value())? / norm(&delta)?;
            w.set_value(w.value().add(&delta.mul_scalar(c)?)?)?;
        }
    }
    Ok(g)
}

/// Mean KL(teacher || student) per position of `logits` `[.., vocab]`.
fn kl(student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
    let v = *student.dims().last().unwrap_or(&1);
    let s = student.try_reshape([student.elem_count() / v, v])?.try_log_softmax(1)?;
    let t = teacher.try_reshape([teacher.elem_count() / v, v])?.try_log_softmax(1)?;
    let p = t.try_exp()?;
    p.try_mul(&t.try_sub(&s)?)?.try_sum(1, false)?.try_mean_all()
}

fn eval_windows(data: &CharDataset, s: &Settings, device: Device) -> Result<Vec<Batch>> {
    let w = data.windows(s.context)?;
    let idx: Vec<usize> = (0..w.len().min(s.eval_windows)).collect();
    idx.chunks(s.batch.max(1)).map(|c| w.batch(c, device)).collect()
}

fn eval_ce(model: &Gpt, data: &CharDataset, s: &Settings, device: Device) -> Result<f64> {
    let sum = CrossEntropy { reduction: Reduction::Sum, ..Default::default() };
    let (mut total, mut count) = (0.0, 0usize);
    for b in eval_windows(data, s, device)? {
        total += no_grad(|| loss::cross_entropy(&model.try_forward(&b.inputs)?, &b.targets, sum))?.item();
        count += b.targets.elem_count();
    }
    Ok(total / count.max(1) as f64)
}

fn eval_kl(student: &Gpt, teacher: &Gpt, data: &CharDataset, s: &Settings, device: Device) -> Result<f64> {
    let (mut total, mut count) = (0.0, 0usize);
    for b in eval_windows(data, s, device)? {
        let n = b.inputs.elem_count();
        total += no_grad(|| kl(&student.try_forward(&b.inputs)?, &teacher.try_forward(&b.inputs)?))?.item() * n as f64;
        count += n;
    }
    Ok(total / count.max(1) as f64)
}

/// Normalised entropy of counts (1 when uniform, 0 when one expert takes all).
fn entropy(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 || counts.len() < 2 {
        return 1.0;
    }
    let h: f64 = counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / total as f64).map(|p| -p * p.ln()).sum();
    h / (counts.len() as f64).ln()
}

pub struct Ctx<'a> {
    pub args: &'a Args,
    pub s: &'a Settings,
    pub texts: &'a Texts,
    pub base: &'a Path,
    pub teacher: &'a Gpt,
}

/// One MoLA run; `log` sees each step's objective.
pub fn run_one(
    c: &Ctx,
    task: Task,
    allocation: &str,
    seed: u64,
    log: &mut dyn FnMut(f64, u64) -> Result<()>,
) -> Result<RunStats> {
    let (args, s, device) = (c.args, c.s, c.args.common.device);
    let start = std::time::Instant::now();
    let model = load(c.base, device)?;
    let lora = LoraConfig::new(args.rank, args.alpha, &["qkv", "proj", "fc1", "fc2"]);
    let cfg = MolaConfig { top_k: args.top_k, ..MolaConfig::new(lora, allocation)? };
    let mola = Mola::new(&model, cfg, &mut Init::new(seed).with_device(device))?;
    model.to_device(device)?;
    let mut opt = Adam::new(model.trainable_parameters(), AdamConfig::adamw(args.lr, 0.0))?;
    let mut rng = Rng::new(seed);
    let data = match task {
        Task::Distill => &c.texts.pre.0,
        Task::Tempest => &c.texts.tempest.0,
    };
    let (mut train, mut balance) = (Vec::new(), Vec::new());
    model.train(true);
    for _ in 0..s.steps {
        let b = data.random_batch(s.batch, s.context, &mut rng, device)?;
        let logits = model.try_forward(&b.inputs)?;
        let objective = match task {
            Task::Distill => kl(&logits, &no_grad(|| c.teacher.try_forward(&b.inputs))?)?,
            Task::Tempest => loss::cross_entropy(&logits, &b.targets, CrossEntropy::default())?,
        };
        let per_layer = mola.balance_losses()?;
        let bal: Vec<f64> = per_layer.iter().map(|(_, l)| l.item()).collect();
        let aux = mola.aux_loss()?.ok_or_else(|| Error::msg("mola: no routing recorded in the forward pass"))?;
        objective.try_add(&aux)?.backward()?;
        opt.step()?;
        opt.zero_grad();
        train.push(objective.item());
        balance.push(mean(&bal));
        log(objective.item(), b.inputs.elem_count() as u64)?;
    }
    model.eval();
    mola.reset_usage();
    let final_loss = match task {
        Task::Distill => eval_kl(&model, c.teacher, &c.texts.pre.1, s, device)?,
        Task::Tempest => eval_ce(&model, &c.texts.tempest.1, s, device)?,
    };
    // Usage on the evaluation windows, summed over each block's modules.
    let mut usage: Vec<Vec<u64>> = mola.allocation().iter().map(|&(_, e)| vec![0; e]).collect();
    let layers: Vec<usize> = mola.allocation().iter().map(|&(l, _)| l).collect();
    for l in mola.layers() {
        let i = layers.iter().position(|&x| x == l.layer).expect("an allocated layer");
        usage[i].iter_mut().zip(l.usage()).for_each(|(u, x)| *u += x);
    }
    Ok(RunStats {
        task,
        allocation: allocation.to_string(),
        seed,
        final_loss,
        train,
        balance,
        redundancy: mola.redundancy()?.into_iter().map(|(_, r)| r).collect(),
        usage_entropy: usage.iter().map(|u| entropy(u)).collect(),
        usage,
        seconds: start.elapsed().as_secs_f64(),
    })
}

pub fn train(args: &Args) -> Result<Outcome> {
    let s = args.settings();
    let device = args.common.device;
    if args.seeds == 0 || args.allocations.is_empty() {
        return Err(Error::invalid("mola", "needs --seeds >= 1 and at least one allocation"));
    }
    let texts = texts()?;
    let seeds: Vec<u64> = (args.common.seed..args.common.seed + args.seeds).collect();
    let total = s.steps * (args.allocations.len() * seeds.len() * TASKS.len()) as u64;
    let dir = args.common.out_dir("mola");
    let mut run = Run::create("mola", &dir, total)?;
    run.config(&[
        ("device", device.to_string().into()),
        ("d_model", s.d_model.into()),
        ("context", s.context.into()),
        ("batch_size", s.batch.into()),
        ("pretrain_steps", s.pretrain_steps.into()),
        ("steps_per_run", s.steps.into()),
        ("eval_windows", s.eval_windows.into()),
        ("seeds", (seeds.len() as u64).into()),
        ("first_seed", args.common.seed.into()),
        ("allocations", args.allocations.join(";").into()),
        ("rank", args.rank.into()),
        ("alpha", args.alpha.into()),
        ("top_k", args.top_k.into()),
        ("lr", args.lr.into()),
        ("plant_scale", args.plant_scale.into()),
    ])?;
    let base_path = base(args, &s, &texts, &dir, &mut run)?;
    let teacher = teacher(&base_path, args.plant_scale, device)?;
    let base_model = load(&base_path, device)?;
    let base_kl = eval_kl(&base_model, &teacher, &texts.pre.1, &s, device)?;
    let base_tempest = eval_ce(&base_model, &texts.tempest.1, &s, device)?;
    drop(base_model);
    let ctx = Ctx { args, s: &s, texts: &texts, base: &base_path, teacher: &teacher };
    let mut global = 0u64;
    let mut runs = Vec::new();
    for &task in &TASKS {
        for alloc in &args.allocations {
            for &seed in &seeds {
                let mut log = |loss: f64, n: u64| {
                    global += 1;
                    run.step(global - 1, loss, n)
                };
                let r = run_one(&ctx, task, alloc, seed, &mut log)?;
                run.log(&[
                    ("event", "run".into()),
                    ("task", task.name().into()),
                    ("allocation", alloc.clone().into()),
                    ("seed", seed.into()),
                    ("final_loss", r.final_loss.into()),
                    ("balance_first", r.balance.first().copied().unwrap_or(f64::NAN).into()),
                    ("balance_last", r.balance.last().copied().unwrap_or(f64::NAN).into()),
                    ("redundancy", format!("{:?}", r.redundancy).into()),
                    ("usage", format!("{:?}", r.usage).into()),
                    ("seconds", r.seconds.into()),
                ])?;
                runs.push(r);
            }
        }
    }
    let report = results_md(args, &s, &runs, base_kl, base_tempest);
    let path = run.dir().join("results.md");
    std::fs::write(&path, &report).map_err(|e| Error::io(&path, e))?;
    plots(&run, args, &runs)?;
    run.println(&report);
    let mut result: Vec<(String, Value)> = Vec::new();
    for &task in &TASKS {
        let mut best = (String::new(), f64::INFINITY);
        for a in &args.allocations {
            let m = mean(&finals(&runs, task, a));
            result.push((format!("{}_{}", task.name(), a.replace(',', "")), m.into()));
            if m < best.1 {
                best = (a.replace(',', ""), m);
            }
        }
        result.push((format!("{}_best", task.name()), best.0.into()));
    }
    let fields: Vec<(&str, Value)> = result.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let result_line = run.finish(&fields)?;
    Ok(Outcome { runs, base_kl, base_tempest, result_line })
}

fn finals(runs: &[RunStats], task: Task, alloc: &str) -> Vec<f64> {
    of(runs, task, alloc).map(|r| r.final_loss).collect()
}

fn of<'a>(runs: &'a [RunStats], task: Task, alloc: &'a str) -> impl Iterator<Item = &'a RunStats> + 'a {
    runs.iter().filter(move |r| r.task == task && r.allocation == alloc)
}

/// Per-layer means over the seeds of `f(run)`.
fn layer_means(runs: &[RunStats], task: Task, alloc: &str, f: impl Fn(&RunStats) -> &Vec<f64>) -> Vec<f64> {
    let rs: Vec<&RunStats> = of(runs, task, alloc).collect();
    let n = rs.first().map_or(0, |r| f(r).len());
    (0..n).map(|i| mean(&rs.iter().map(|r| f(r)[i]).collect::<Vec<_>>())).collect()
}

fn window_mean(v: &[f64], from: f64, to: f64) -> f64 {
    let (a, b) = ((v.len() as f64 * from) as usize, ((v.len() as f64 * to) as usize).max(1));
    mean(&v[a.min(v.len())..b.min(v.len())])
}

fn results_md(args: &Args, s: &Settings, runs: &[RunStats], base_kl: f64, base_tempest: f64) -> String {
    let mut out = String::new();
    let seeds: Vec<String> = of(runs, Task::Distill, &args.allocations[0]).map(|r| r.seed.to_string()).collect();
    let _ = writeln!(out, "# MoLA allocations on a 4-layer char GPT\n");
    let _ = writeln!(
        out,
        "Base: GPT d {}, 4 blocks, {} heads, context {}, pretrained {} steps (batch {}) on the Sonnets and \
         Macbeth. MoLA r {}, alpha {}, top-{}, on qkv, proj, fc1, fc2; AdamW lr {} (fixed), balance \
         coefficient 0.001; {} steps per run, batch {}; seeds {} paired across allocations; {} eval windows \
         of {} characters; device {}.\n",
        s.d_model,
        args.heads,
        s.context,
        s.pretrain_steps,
        s.batch,
        args.rank,
        args.alpha,
        args.top_k,
        args.lr,
        s.steps,
        s.batch,
        seeds.join(", "),
        s.eval_windows,
        s.context,
        args.common.device
    );
    for &task in &TASKS {
        let reference = match task {
            Task::Distill => format!("base model (no experts): {base_kl:.4}"),
            Task::Tempest => format!("base model (no experts): {base_tempest:.4}"),
        };
        let title = match task {
            Task::Distill => "(a) Distillation to a teacher changed in blocks 3-4",
            Task::Tempest => "(b) Fine-tuning on The Tempest",
        };
        let _ = writeln!(out, "## {title}\n\nFinal {}; {reference}.\n", task.metric());
        let first = &args.allocations[0];
        let _ = writeln!(
            out,
            "| allocation | final mean ± sd | per seed | minus {} per seed | balance loss first 10% → last 10% | s / run |",
            first.replace(',', "")
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
        let reference: Vec<f64> = finals(runs, task, first);
        for a in &args.allocations {
            let f = finals(runs, task, a);
            let per: Vec<String> = f.iter().map(|x| format!("{x:.4}")).collect();
            let diff: Vec<String> = f.iter().zip(&reference).map(|(x, y)| format!("{:+.4}", x - y)).collect();
            let rs: Vec<&RunStats> = of(runs, task, a).collect();
            let b0 = mean(&rs.iter().map(|r| window_mean(&r.balance, 0.0, 0.1)).collect::<Vec<_>>());
            let b1 = mean(&rs.iter().map(|r| window_mean(&r.balance, 0.9, 1.0)).collect::<Vec<_>>());
            let secs = mean(&rs.iter().map(|r| r.seconds).collect::<Vec<_>>());
            let _ = writeln!(
                out,
                "| {} | {:.4} ± {:.4} | {} | {} | {b0:.4} → {b1:.4} | {secs:.1} |",
                a.replace(',', ""),
                mean(&f),
                sd(&f),
                per.join(", "),
                diff.join(", ")
            );
        }
        let _ = writeln!(out, "\nRedundancy per block (mean pairwise ‖(α/r)(B_i A_i − B_j A_j)‖_F, seed mean; higher = more distinct experts):\n");
        let _ = writeln!(out, "| allocation | block 1 | block 2 | block 3 | block 4 |");
        let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
        for a in &args.allocations {
            let r = layer_means(runs, task, a, |r| &r.redundancy);
            let cells: Vec<String> = r.iter().map(|x| format!("{x:.4}")).collect();
            let _ = writeln!(out, "| {} | {} |", a.replace(',', ""), cells.join(" | "));
        }
        let _ = writeln!(out, "\nExpert usage on the eval windows per block (normalised entropy of assignments, 1 = uniform; seed mean):\n");
        let _ = writeln!(out, "| allocation | block 1 | block 2 | block 3 | block 4 |");
        let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
        for a in &args.allocations {
            let r = layer_means(runs, task, a, |r| &r.usage_entropy);
            let cells: Vec<String> = r.iter().map(|x| format!("{x:.3}")).collect();
            let _ = writeln!(out, "| {} | {} |", a.replace(',', ""), cells.join(" | "));
        }
        let _ = writeln!(out, "\nWhat this shows:\n");
        let m = |a: &str| mean(&finals(runs, task, a));
        let has = |a: &str| args.allocations.iter().any(|x| x == a);
        if has("2,4,6,8") && has("8,6,4,2") {
            let up: Vec<f64> = finals(runs, task, "2,4,6,8");
            let down: Vec<f64> = finals(runs, task, "8,6,4,2");
            let wins = up.iter().zip(&down).filter(|(u, d)| u < d).count();
            let _ = writeln!(
                out,
                "- Paper's claim (more experts in higher layers beats more in lower layers): 2468 {:.4} vs 8642 {:.4}, \
                 2468 lower in {wins} of {} seeds; {}.",
                m("2,4,6,8"),
                m("8,6,4,2"),
                up.len(),
                if wins == up.len() && m("2,4,6,8") < m("8,6,4,2") {
                    "holds here"
                } else {
                    "does NOT hold consistently here"
                }
            );
        }
        let mut ranked: Vec<(&String, f64)> = args.allocations.iter().map(|a| (a, m(a))).collect();
        ranked.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
        let order: Vec<String> = ranked.iter().map(|(a, v)| format!("{} {v:.4}", a.replace(',', ""))).collect();
        let spread = ranked.last().map_or(0.0, |l| l.1) - ranked.first().map_or(0.0, |f| f.1);
        let seed_sd = mean(&args.allocations.iter().map(|a| sd(&finals(runs, task, a))).collect::<Vec<_>>());
        let _ = writeln!(
            out,
            "- Ranking (best first): {}. Range between allocations {spread:.4} against a mean seed sd of {seed_sd:.4}{}.",
            order.join(", "),
            if spread < 2.0 * seed_sd { ": the allocations are not distinguishable at this scale" } else { "" }
        );
        if has("5,5,5,5") {
            let r = layer_means(runs, task, "5,5,5,5", |r| &r.redundancy);
            let rising = r.windows(2).all(|w| w[0] <= w[1]);
            let cells: Vec<String> = r.iter().map(|x| format!("{x:.4}")).collect();
            let _ = writeln!(
                out,
                "- Redundancy with equal experts per block (5555): {}; the paper's finding (distance grows with \
                 depth) {}.",
                cells.join(", "),
                if rising { "holds here" } else { "does NOT hold monotonically here" }
            );
        }
        let _ = writeln!(out);
    }
    out
}

fn plots(run: &Run, args: &Args, runs: &[RunStats]) -> Result<()> {
    for &task in &TASKS {
        let mut bal = LinePlot::new(format!("MoLA balance loss, mean over blocks ({})", task.name()))
            .x_label("step")
            .y_label("E sum f P");
        let mut tr =
            LinePlot::new(format!("MoLA training objective ({})", task.name())).x_label("step").y_label(task.metric());
        let mut red = LinePlot::new(format!("MoLA redundancy per block ({})", task.name()))
            .x_label("block")
            .y_label("mean pairwise Frobenius distance");
        for a in &args.allocations {
            let rs: Vec<&RunStats> = of(runs, task, a).collect();
            let n = rs.first().map_or(0, |r| r.balance.len());
            let avg =
                |f: &dyn Fn(&RunStats) -> &Vec<f64>, i: usize| mean(&rs.iter().map(|r| f(r)[i]).collect::<Vec<_>>());
            // A moving mean over 10 steps, so the seed noise of single batches does not hide the trend.
            let smooth = |f: &dyn Fn(&RunStats) -> &Vec<f64>| -> Vec<(f64, f64)> {
                let raw: Vec<f64> = (0..n).map(|i| avg(f, i)).collect();
                (0..n).map(|i| (i as f64, mean(&raw[i.saturating_sub(9)..=i]))).collect()
            };
            let name = a.replace(',', "");
            bal = bal.series(&name, smooth(&|r| &r.balance));
            tr = tr.series(&name, smooth(&|r| &r.train));
            let red_means = layer_means(runs, task, a, |r| &r.redundancy);
            red = red.series(&name, red_means.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, v)));
        }
        bal.write_png(run.dir().join(format!("balance_{}.png", task.name())))?;
        tr.write_png(run.dir().join(format!("train_{}.png", task.name())))?;
        red.write_png(run.dir().join(format!("redundancy_{}.png", task.name())))?;
    }
    Ok(())
}

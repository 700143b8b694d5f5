//! Fine-tuning a pretrained char GPT three ways: full fine-tuning, LoRA r=8 and DoRA r=8.
//!
//! A base char GPT of W3's shape (d 128, 4 layers, 4 heads, context 128) is pretrained on the
//! Sonnets and Macbeth of the committed text (the part before "THE TEMPEST"), then fine-tuned
//! on The Tempest by each method with the same steps, the same batches and the same seed.
//! LoRA and DoRA adapt the attention (`qkv`, `proj`) and MLP (`fc1`, `fc2`) projections with
//! the base frozen. Per method it reports the trainable parameters, the training memory from
//! the per-layer accounting (`MemoryReport`), the median step time, and the final validation
//! loss on The Tempest and on the pretraining text (what fine-tuning forgot).
//!
//!     cargo run --release --example lora_finetune
//!     cargo run --release --example lora_finetune -- --base runs/lora_finetune/base.safetensors
//!     cargo run --release --example lora_finetune -- --finetune-text data/fetched/moby-dick/moby-dick.txt
//!
//! The base vocabulary is the pretraining text's characters plus one reserved id; characters
//! of the fine-tuning text outside it map to that id, and are counted and reported (The
//! Tempest has a few, Moby Dick more). The base is cached as `base.safetensors` in the output
//! folder (`runs/lora_finetune`) and reused by a later run with the same pretraining settings;
//! `--base FILE` loads one instead. The folder also gets `metrics.jsonl`, `loss.png`,
//! `finetune.png` (validation loss on the fine-tuning text per method), `forgetting.png`
//! (validation loss on the pretraining text), `results.md`, the adapters in HF PEFT's layout
//! (`lora_adapter/`, `dora_adapter/`) and the fine-tuning validation windows
//! (`finetune_val.safetensors`), with which the printed command has HF PEFT load each adapter
//! and recompute its loss.

use clap::Parser;
use plies::autodiff::rng::Rng;
use plies::autodiff::{Error, Result};
use plies::nn::checkpoint::{load_gpt, save_gpt, save_tensors};
use plies::nn::prelude::*;
use plies::nn::train::{CommonArgs, LinePlot, Run, Value};
use plies::nn::MemoryReport;
use plies::peft::lora::{Lora, LoraConfig};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

static SHAKESPEARE: &str = include_str!("../data/shakespeare.txt");

/// Where The Tempest begins in the committed text (its title line).
const TEMPEST_TITLE: &str = "\nTHE TEMPEST\n";

/// The modules LoRA and DoRA adapt: attention and MLP projections of every block.
const TARGETS: [&str; 4] = ["qkv", "proj", "fc1", "fc2"];

/// Full fine-tuning, LoRA and DoRA on a pretrained char GPT
#[derive(Parser, Clone, Debug)]
#[command(name = "lora_finetune")]
pub struct Args {
    /// `--steps` sets the fine-tuning steps per method (default 300)
    #[command(flatten)]
    pub common: CommonArgs,
    /// Load the base from this checkpoint (saved by this example) instead of pretraining one
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// Fine-tune on this UTF-8 text instead of The Tempest
    #[arg(long)]
    pub finetune_text: Option<PathBuf>,
    /// Pretraining steps of the base
    #[arg(long, default_value_t = 800)]
    pub pretrain_steps: u64,
    /// Peak learning rate of pretraining (warmup, then cosine to a tenth)
    #[arg(long, default_value_t = 3e-3)]
    pub pretrain_lr: f64,
    /// Peak learning rate of full fine-tuning
    #[arg(long, default_value_t = 1e-3)]
    pub full_lr: f64,
    /// Peak learning rate of LoRA and DoRA
    #[arg(long, default_value_t = 5e-3)]
    pub lora_lr: f64,
    /// Adapter rank
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    /// Adapter alpha (scaling alpha / r)
    #[arg(long, default_value_t = 16.0)]
    pub alpha: f64,
    /// The fraction at the end of each text held out for validation
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Validation windows evaluated per text (at most all of them)
    #[arg(long, default_value_t = 64)]
    pub val_windows: usize,
    /// Evaluate every this many steps
    #[arg(long, default_value_t = 50)]
    pub eval_every: u64,
    #[arg(long, default_value_t = 128)]
    pub d_model: usize,
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    #[arg(long, default_value_t = 128)]
    pub context: usize,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
}

impl Args {
    pub const STEPS: u64 = 300;
}

fn main() {
    plies::init();
    let args = Args::parse();
    args.common.open_device_or_exit();
    match train(&args) {
        Ok(outcome) => {
            eprintln!("to check the adapters with HF PEFT:\n  {}", outcome.peft_check);
            println!("{}", outcome.result_line);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Full,
    Lora,
    Dora,
}

pub const METHODS: [Method; 3] = [Method::Full, Method::Lora, Method::Dora];

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Full => "full",
            Method::Lora => "lora",
            Method::Dora => "dora",
        }
    }
}

/// What one fine-tuning method did.
#[derive(Clone, Debug)]
pub struct MethodStats {
    pub method: Method,
    pub trainable: usize,
    pub losses: Vec<f64>,
    /// (steps done, validation loss) on the fine-tuning text and on the pretraining text.
    pub finetune_curve: Vec<(f64, f64)>,
    pub pretrain_curve: Vec<(f64, f64)>,
    pub finetune_val: f64,
    pub pretrain_val: f64,
    pub step_ms: f64,
    /// The measured step whose accounted bytes were largest.
    pub memory: MemoryReport,
}

impl MethodStats {
    /// Parameters, gradients, optimizer state and saved activations of the step.
    pub fn accounted_bytes(&self) -> u64 {
        let t = self.memory.totals();
        t.param_bytes + t.grad_bytes + t.optimizer_bytes + t.saved_bytes
    }
}

pub struct Outcome {
    pub methods: Vec<MethodStats>,
    /// The base's validation losses before fine-tuning (fine-tuning text, pretraining text).
    pub base_val: (f64, f64),
    pub oov: Oov,
    pub base_path: PathBuf,
    pub pretrained: bool,
    pub peft_check: String,
    pub result_line: String,
}

/// The base vocabulary: the pretraining text's characters, sorted, then one reserved id for
/// every character outside them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseVocab {
    pub chars: Vec<char>,
    ids: HashMap<char, i32>,
}

/// Characters of a text outside the base vocabulary.
#[derive(Clone, Debug, Default)]
pub struct Oov {
    pub count: usize,
    /// Each distinct character with its count.
    pub chars: BTreeMap<char, usize>,
}

impl BaseVocab {
    pub fn from_text(text: &str) -> BaseVocab {
        let chars = text.chars().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        BaseVocab::from_chars(chars)
    }

    fn from_chars(chars: Vec<char>) -> BaseVocab {
        let ids = chars.iter().enumerate().map(|(i, &c)| (c, i as i32)).collect();
        BaseVocab { chars, ids }
    }

    pub fn reserved(&self) -> i32 {
        self.chars.len() as i32
    }

    /// Ids including the reserved one.
    pub fn size(&self) -> usize {
        self.chars.len() + 1
    }

    pub fn encode(&self, text: &str) -> (Vec<i32>, Oov) {
        let mut oov = Oov::default();
        let ids = text
            .chars()
            .map(|c| {
                self.ids.get(&c).copied().unwrap_or_else(|| {
                    oov.count += 1;
                    *oov.chars.entry(c).or_default() += 1;
                    self.reserved()
                })
            })
            .collect();
        (ids, oov)
    }

    /// The checkpoint metadata that carries the vocabulary.
    fn to_meta(&self) -> Result<HashMap<String, String>> {
        let chars: String = self.chars.iter().collect();
        let vocab = serde_json::to_string(&chars).map_err(|e| Error::msg(e.to_string()))?;
        Ok(HashMap::from([("vocab".to_string(), vocab), ("reserved_id".to_string(), self.reserved().to_string())]))
    }

    fn from_meta(path: &Path, meta: &HashMap<String, String>, vocab_size: usize) -> Result<BaseVocab> {
        let bad = |at: &str, msg: String| Error::Format { path: path.display().to_string(), at: at.into(), msg };
        let text = meta.get("vocab").ok_or_else(|| bad("metadata", "no `vocab` entry".into()))?;
        let chars: String = serde_json::from_str(text).map_err(|e| bad("metadata `vocab`", e.to_string()))?;
        let vocab = BaseVocab::from_chars(chars.chars().collect());
        let reserved = meta.get("reserved_id").ok_or_else(|| {
            bad("metadata", "no `reserved_id` entry: not a base saved by lora_finetune (char_gpt's has none)".into())
        })?;
        if reserved.parse::<i32>().ok() != Some(vocab.reserved()) || vocab.size() != vocab_size {
            return Err(bad(
                "metadata `reserved_id`",
                format!(
                    "{reserved} with a vocabulary of {} characters and a model of {vocab_size} ids; expected {} and {}",
                    vocab.chars.len(),
                    vocab.reserved(),
                    vocab.size()
                ),
            ));
        }
        Ok(vocab)
    }
}

/// A token sequence split into training and validation parts.
struct Split {
    train: Vec<i32>,
    val: Vec<i32>,
}

impl Split {
    fn new(tokens: Vec<i32>, val_fraction: f64, context: usize, what: &str) -> Result<Split> {
        if !(0.0..1.0).contains(&val_fraction) {
            return Err(Error::invalid("lora_finetune", format!("--val-fraction {val_fraction} is outside 0..1")));
        }
        let n_val = (val_fraction * tokens.len() as f64).round() as usize;
        let cut = tokens.len() - n_val;
        if cut < context + 1 || n_val < context + 1 {
            return Err(Error::invalid(
                "lora_finetune",
                format!(
                    "the {what} ({} characters) is too short for context {context} with --val-fraction {val_fraction}",
                    tokens.len()
                ),
            ));
        }
        let val = tokens[cut..].to_vec();
        let mut train = tokens;
        train.truncate(cut);
        Ok(Split { train, val })
    }
}

/// Inputs and targets `[n, context]` of the windows starting at `starts`.
fn windows(tokens: &[i32], starts: &[usize], context: usize, device: Device) -> Result<(Tensor, Tensor)> {
    let mut x = Vec::with_capacity(starts.len() * context);
    let mut y = Vec::with_capacity(starts.len() * context);
    for &s in starts {
        x.extend_from_slice(&tokens[s..s + context]);
        y.extend_from_slice(&tokens[s + 1..s + context + 1]);
    }
    let n = starts.len();
    Ok((Tensor::try_from_vec(x, [n, context], device)?, Tensor::try_from_vec(y, [n, context], device)?))
}

fn random_batch(tokens: &[i32], args: &Args, rng: &mut Rng, device: Device) -> Result<(Tensor, Tensor)> {
    let starts: Vec<usize> =
        (0..args.batch_size).map(|_| rng.below((tokens.len() - args.context) as u64) as usize).collect();
    windows(tokens, &starts, args.context, device)
}

/// The validation windows: starts 0, c, 2c, ... (each c + 1 tokens), the first `max` of them.
fn val_starts(tokens: &[i32], context: usize, max: usize) -> Vec<usize> {
    (0..).map(|k| k * context).take_while(|&s| s + context < tokens.len()).take(max).collect()
}

/// Mean cross-entropy per character over the validation windows.
pub fn val_loss(model: &Gpt, tokens: &[i32], args: &Args, device: Device) -> Result<f64> {
    let starts = val_starts(tokens, args.context, args.val_windows);
    let sum = CrossEntropy { reduction: Reduction::Sum, ..Default::default() };
    let (mut total, mut count) = (0.0, 0);
    model.eval();
    for chunk in starts.chunks(args.batch_size) {
        let (x, y) = windows(tokens, chunk, args.context, device)?;
        total += no_grad(|| loss::cross_entropy(&model.try_forward(&x)?, &y, sum))?.item();
        count += y.elem_count();
    }
    model.train(true);
    Ok(total / count as f64)
}

/// The texts: pretraining (Sonnets and Macbeth) and fine-tuning (The Tempest or a file).
fn texts(args: &Args) -> Result<(&'static str, String, String)> {
    let cut = SHAKESPEARE
        .find(TEMPEST_TITLE)
        .ok_or_else(|| Error::msg("data/shakespeare.txt: no line `THE TEMPEST` where the play begins"))?;
    let (pretrain, tempest) = SHAKESPEARE.split_at(cut + 1);
    match &args.finetune_text {
        None => Ok((pretrain, tempest.to_string(), "The Tempest".into())),
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let text = String::from_utf8(bytes).map_err(|e| Error::Format {
                path: path.display().to_string(),
                at: format!("byte {}", e.utf8_error().valid_up_to()),
                msg: "invalid UTF-8".into(),
            })?;
            Ok((pretrain, text, path.display().to_string()))
        }
    }
}

fn config(args: &Args, vocab_size: usize) -> Result<GptConfig> {
    if args.heads == 0 || !args.d_model.is_multiple_of(args.heads) {
        return Err(Error::invalid(
            "lora_finetune",
            format!("--d-model {} is not a multiple of --heads {}", args.d_model, args.heads),
        ));
    }
    Ok(GptConfig {
        vocab_size,
        context: args.context,
        d_model: args.d_model,
        n_layer: args.layers,
        n_head: args.heads,
        ..GptConfig::char_small()
    })
}

/// One AdamW step with gradient clipping; returns the loss and, when asked, the memory
/// measured between forward and backward (its cost is left out of the step time).
fn step(
    model: &Gpt,
    opt: &mut Adam,
    batch: &(Tensor, Tensor),
    measure: bool,
) -> Result<(f64, f64, Option<MemoryReport>)> {
    let t0 = Instant::now();
    let loss = loss::cross_entropy(&model.try_forward(&batch.0)?, &batch.1, CrossEntropy::default())?;
    let forward = t0.elapsed();
    let memory = if measure { Some(MemoryReport::measure(model, Some(&*opt as &dyn Optimizer), &loss)?) } else { None };
    let t1 = Instant::now();
    loss.backward()?;
    clip_grad_norm(&model.trainable_parameters(), 1.0)?;
    opt.step()?;
    opt.zero_grad();
    let ms = (forward + t1.elapsed()).as_secs_f64() * 1e3;
    Ok((loss.item(), ms, memory))
}

fn adamw(params: Vec<NamedParam>, lr: f64, weight_decay: f64) -> Result<Adam> {
    // No decay on biases, LayerNorms and DoRA magnitudes (vectors), as nanoGPT.
    let (matrices, others) = params.into_iter().partition(|p| p.tensor.rank() >= 2);
    let groups = vec![ParamGroup::new(matrices), ParamGroup::new(others).weight_decay(0.0)];
    Adam::with_groups(groups, AdamConfig::adamw(lr, weight_decay))
}

fn schedule(steps: u64) -> Schedule {
    Schedule::WarmupCosine { warmup: 100.min(steps as usize / 10), total: steps as usize, min_factor: 0.1 }
}

/// The pretraining settings a cached base must have been made with.
fn pretrain_key(args: &Args) -> String {
    format!(
        "steps {} lr {} seed {} batch {} val_fraction {}",
        args.pretrain_steps, args.pretrain_lr, args.common.seed, args.batch_size, args.val_fraction
    )
}

/// Pretrain the base and save it to `path`; its steps go into `run` as steps 0.. .
fn pretrain(args: &Args, run: &mut Run, vocab: &BaseVocab, pre: &Split, path: &Path) -> Result<()> {
    let device = args.common.device;
    let model = Gpt::new(&mut Init::new(args.common.seed).with_device(device), config(args, vocab.size())?);
    let mut opt = adamw(model.named_parameters(), args.pretrain_lr, 0.1)?;
    let sched = schedule(args.pretrain_steps);
    let mut rng = Rng::new(args.common.seed);
    for s in 0..args.pretrain_steps {
        opt.set_lr_factor(sched.factor(s as usize));
        let batch = random_batch(&pre.train, args, &mut rng, device)?;
        let (loss, _, _) = step(&model, &mut opt, &batch, false)?;
        run.step(s, loss, (args.batch_size * args.context) as u64)?;
        if (s + 1) % args.eval_every == 0 || s + 1 == args.pretrain_steps {
            run.eval(s, &[("pretrain_val_loss", val_loss(&model, &pre.val, args, device)?)])?;
        }
    }
    let mut meta = vocab.to_meta()?;
    meta.insert("pretrain".into(), pretrain_key(args));
    save_gpt(&model, path, &meta)
}

/// The base checkpoint to fine-tune from (loaded, cached, or pretrained now) and whether it
/// was pretrained in this run.
fn base(args: &Args, run: &mut Run, pre_text: &str) -> Result<(PathBuf, BaseVocab, bool)> {
    if let Some(path) = &args.base {
        let (model, meta) = load_gpt(path, &mut Init::new(0))?;
        return Ok((path.clone(), BaseVocab::from_meta(path, &meta, model.config.vocab_size)?, false));
    }
    let path = run.dir().join("base.safetensors");
    let vocab = BaseVocab::from_text(pre_text);
    if path.is_file() {
        match load_gpt(&path, &mut Init::new(0)) {
            Ok((model, meta))
                if meta.get("pretrain") == Some(&pretrain_key(args))
                    && model.config == config(args, vocab.size())?
                    && BaseVocab::from_meta(&path, &meta, model.config.vocab_size).ok().as_ref() == Some(&vocab) =>
            {
                run.println(format!("reusing the base pretrained earlier: {}", path.display()));
                return Ok((path, vocab, false));
            }
            _ => run.println(format!("{} was made with other settings: pretraining anew", path.display())),
        }
    }
    let (pre, _) = BaseVocab::encode(&vocab, pre_text);
    pretrain(args, run, &vocab, &Split::new(pre, args.val_fraction, args.context, "pretraining text")?, &path)?;
    Ok((path, vocab, true))
}

/// Fine-tune a fresh copy of the base by `method`; its steps go into `run` from `first_step`.
fn finetune(
    args: &Args,
    run: &mut Run,
    method: Method,
    base_path: &Path,
    texts: (&Split, &Split),
    first_step: u64,
) -> Result<(MethodStats, Option<Lora>)> {
    let (ft, pre) = texts;
    let (device, seed) = (args.common.device, args.common.seed);
    let steps = args.common.steps_or(Args::STEPS);
    let (model, _) = load_gpt(base_path, &mut Init::new(seed).with_device(device))?;
    let lora = match method {
        Method::Full => None,
        Method::Lora | Method::Dora => {
            let config = LoraConfig {
                use_dora: method == Method::Dora,
                base_model_name_or_path: Some(base_path.display().to_string()),
                ..LoraConfig::new(args.rank, args.alpha, &TARGETS)
            };
            Some(Lora::new(&model, config, &mut Init::new(seed + 1))?)
        }
    };
    model.to_device(device)?;
    let trainable = model.trainable_parameters();
    let n_trainable = trainable.iter().map(|p| p.tensor.elem_count()).sum();
    let lr = if method == Method::Full { args.full_lr } else { args.lora_lr };
    let mut opt = adamw(trainable, lr, 0.0)?;
    let sched = schedule(steps);
    // The same batches for every method.
    let mut rng = Rng::new(seed ^ 0x7e57);
    let (mut losses, mut times) = (Vec::new(), Vec::new());
    let (mut ft_curve, mut pre_curve) = (Vec::new(), Vec::new());
    let mut memory: Option<MemoryReport> = None;
    let total = |m: &MemoryReport| {
        let t = m.totals();
        t.param_bytes + t.grad_bytes + t.optimizer_bytes + t.saved_bytes
    };
    for s in 0..steps {
        opt.set_lr_factor(sched.factor(s as usize));
        let batch = random_batch(&ft.train, args, &mut rng, device)?;
        // Optimizer state exists from the second step on, so measure from there.
        let measure = s == 1 || (s + 1) % args.eval_every == 0;
        let (loss, ms, m) = step(&model, &mut opt, &batch, measure)?;
        if let Some(m) = m {
            run.memory(first_step + s, &m)?;
            if memory.as_ref().is_none_or(|old| total(&m) > total(old)) {
                memory = Some(m);
            }
        }
        losses.push(loss);
        times.push(ms);
        run.step(first_step + s, loss, (args.batch_size * args.context) as u64)?;
        if (s + 1) % args.eval_every == 0 || s + 1 == steps {
            let (a, b) = (val_loss(&model, &ft.val, args, device)?, val_loss(&model, &pre.val, args, device)?);
            ft_curve.push(((s + 1) as f64, a));
            pre_curve.push(((s + 1) as f64, b));
            let names =
                [format!("{}_finetune_val_loss", method.name()), format!("{}_pretrain_val_loss", method.name())];
            run.eval(first_step + s, &[(names[0].as_str(), a), (names[1].as_str(), b)])?;
        }
    }
    if let Some(lora) = &lora {
        lora.save_pretrained(run.dir().join(format!("{}_adapter", method.name())))?;
    }
    times.sort_by(f64::total_cmp);
    let stats = MethodStats {
        method,
        trainable: n_trainable,
        losses,
        finetune_val: ft_curve.last().map_or(f64::NAN, |p| p.1),
        pretrain_val: pre_curve.last().map_or(f64::NAN, |p| p.1),
        finetune_curve: ft_curve,
        pretrain_curve: pre_curve,
        step_ms: times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
        memory: memory.unwrap_or_default(),
    };
    Ok((stats, lora))
}

pub fn train(args: &Args) -> Result<Outcome> {
    let device = args.common.device;
    let steps = args.common.steps_or(Args::STEPS);
    if args.eval_every == 0 {
        return Err(Error::invalid("lora_finetune", "--eval-every must be at least 1"));
    }
    let (pre_text, ft_text, ft_name) = texts(args)?;
    let out = args.common.out_dir("lora_finetune");
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let mut run = Run::create("lora_finetune", &out, args.pretrain_steps + 3 * steps)?;
    run.config(&[
        ("steps", steps.into()),
        ("pretrain_steps", args.pretrain_steps.into()),
        ("seed", args.common.seed.into()),
        ("device", device.to_string().into()),
        ("finetune_text", ft_name.clone().into()),
        ("rank", args.rank.into()),
        ("alpha", args.alpha.into()),
        ("full_lr", args.full_lr.into()),
        ("lora_lr", args.lora_lr.into()),
        ("batch_size", args.batch_size.into()),
        ("context", args.context.into()),
    ])?;
    let t0 = Instant::now();
    let (base_path, vocab, pretrained) = base(args, &mut run, pre_text)?;
    let pretrain_seconds = t0.elapsed().as_secs_f64();
    let (pre_ids, _) = vocab.encode(pre_text);
    let pre = Split::new(pre_ids, args.val_fraction, args.context, "pretraining text")?;
    let (ft_ids, oov) = vocab.encode(&ft_text);
    if oov.count > 0 {
        let list: Vec<String> = oov.chars.iter().map(|(c, n)| format!("{c:?} x{n}")).collect();
        run.println(format!(
            "{ft_name}: {} characters ({} distinct) outside the base vocabulary map to id {}: {}",
            oov.count,
            oov.chars.len(),
            vocab.reserved(),
            list.join(", ")
        ));
    }
    let ft = Split::new(ft_ids, args.val_fraction, args.context, "fine-tuning text")?;

    let (base_model, _) = load_gpt(&base_path, &mut Init::new(0).with_device(device))?;
    base_model.to_device(device)?;
    let base_val = (val_loss(&base_model, &ft.val, args, device)?, val_loss(&base_model, &pre.val, args, device)?);
    drop(base_model);

    let t1 = Instant::now();
    let first = if pretrained { args.pretrain_steps } else { 0 };
    let mut methods = Vec::new();
    for (i, &m) in METHODS.iter().enumerate() {
        let (stats, _lora) = finetune(args, &mut run, m, &base_path, (&ft, &pre), first + i as u64 * steps)?;
        run.println(format!(
            "{}: {ft_name} val {:.4}, pretraining text val {:.4}, {:.1} ms/step",
            m.name(),
            stats.finetune_val,
            stats.pretrain_val,
            stats.step_ms
        ));
        methods.push(stats);
    }
    let finetune_seconds = t1.elapsed().as_secs_f64();

    // The validation windows of the fine-tuning text, for HF PEFT to recompute the losses.
    let starts = val_starts(&ft.val, args.context, args.val_windows);
    let rows: Vec<i32> = starts.iter().flat_map(|&s| ft.val[s..s + args.context + 1].iter().copied()).collect();
    let tokens = Tensor::try_from_vec(rows, [starts.len(), args.context + 1], Device::Cpu)?;
    let tokens_path = out.join("finetune_val.safetensors");
    save_tensors(&tokens_path, &[("tokens".into(), tokens.value())], &HashMap::new())?;
    let peft_check = ["lora", "dora"]
        .iter()
        .map(|m| {
            let s = methods.iter().find(|s| s.method.name() == *m).expect("every method ran");
            format!(
                "python3 bench/peft_round_trip.py --base {} --tokens {} --adapter {} --expect {}",
                base_path.display(),
                tokens_path.display(),
                out.join(format!("{m}_adapter")).display(),
                s.finetune_val
            )
        })
        .collect::<Vec<_>>()
        .join("\n  ");

    let md = results_md(args, &ft_name, &oov, &vocab, base_val, &methods, (pretrained, pretrain_seconds), &peft_check);
    let md_path = out.join("results.md");
    std::fs::write(&md_path, md).map_err(|e| Error::io(&md_path, e))?;
    plots(&out, &ft_name, base_val, &methods)?;

    let mut fields: Vec<(String, Value)> = vec![
        ("steps".into(), steps.into()),
        ("base_finetune_val_loss".into(), base_val.0.into()),
        ("base_pretrain_val_loss".into(), base_val.1.into()),
        ("oov_chars".into(), oov.count.into()),
        ("pretrained".into(), pretrained.into()),
        ("pretrain_seconds".into(), ((pretrain_seconds * 10.0).round() / 10.0).into()),
        ("finetune_seconds".into(), ((finetune_seconds * 10.0).round() / 10.0).into()),
    ];
    for s in &methods {
        let n = s.method.name();
        fields.push((format!("{n}_finetune_val_loss"), s.finetune_val.into()));
        fields.push((format!("{n}_pretrain_val_loss"), s.pretrain_val.into()));
        fields.push((format!("{n}_trainable"), s.trainable.into()));
        fields.push((format!("{n}_step_ms"), ((s.step_ms * 10.0).round() / 10.0).into()));
        fields.push((format!("{n}_memory_bytes"), s.accounted_bytes().into()));
    }
    let borrowed: Vec<(&str, Value)> = fields.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let result_line = run.finish(&borrowed)?;
    Ok(Outcome { methods, base_val, oov, base_path, pretrained, peft_check, result_line })
}

fn kib(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / 1024.0)
}

#[allow(clippy::too_many_arguments)]
fn results_md(
    args: &Args,
    ft_name: &str,
    oov: &Oov,
    vocab: &BaseVocab,
    base_val: (f64, f64),
    methods: &[MethodStats],
    (pretrained, pretrain_seconds): (bool, f64),
    peft_check: &str,
) -> String {
    let steps = args.common.steps_or(Args::STEPS);
    let mut md = String::from("# lora_finetune\n\n");
    let base = if pretrained {
        format!("pretrained in this run ({} steps, {:.0} s)", args.pretrain_steps, pretrain_seconds)
    } else {
        "loaded from a checkpoint".to_string()
    };
    let _ = writeln!(
        md,
        "Base char GPT (d {}, {} layers, {} heads, context {}, vocabulary {} + 1 reserved id) {base}, \
         pretrained on the Sonnets and Macbeth. Fine-tuned on {ft_name} for {steps} steps of {} windows \
         per method, same batches and seed {}; AdamW without weight decay, warmup and cosine, \
         peak learning rate {} (full) and {} (LoRA, DoRA: r {}, alpha {}, on {}). Validation: \
         the first {} windows of the last {} of each text. Device {}.\n",
        args.d_model,
        args.layers,
        args.heads,
        args.context,
        vocab.chars.len(),
        args.batch_size,
        args.common.seed,
        args.full_lr,
        args.lora_lr,
        args.rank,
        args.alpha,
        TARGETS.join(", "),
        args.val_windows,
        args.val_fraction,
        args.common.device,
    );
    let _ = writeln!(
        md,
        "Characters of {ft_name} outside the base vocabulary (mapped to id {}): {}{}\n",
        vocab.reserved(),
        oov.count,
        if oov.chars.is_empty() {
            String::new()
        } else {
            format!(" ({})", oov.chars.iter().map(|(c, n)| format!("{c:?} x{n}")).collect::<Vec<_>>().join(", "))
        }
    );
    md += "| method | trainable params | training memory KiB (params + grads + optimizer + saved act.) | step ms (median) | val loss, fine-tuning text | val loss, pretraining text |\n";
    md += "| --- | ---: | ---: | ---: | ---: | ---: |\n";
    let _ = writeln!(md, "| base (before fine-tuning) | - | - | - | {:.4} | {:.4} |", base_val.0, base_val.1);
    for s in methods {
        let t = s.memory.totals();
        let _ = writeln!(
            md,
            "| {} | {} | {} ({} + {} + {} + {}) | {:.1} | {:.4} | {:.4} |",
            s.method.name(),
            s.trainable,
            kib(s.accounted_bytes()),
            kib(t.param_bytes),
            kib(t.grad_bytes),
            kib(t.optimizer_bytes),
            kib(t.saved_bytes),
            s.step_ms,
            s.finetune_val,
            s.pretrain_val
        );
    }
    md += "\nTraining memory is the measured step (the second, then one per evaluation) with the most \
           accounted bytes; the backend's live bytes at that point were ";
    md += &methods
        .iter()
        .map(|s| format!("{} {} KiB", s.method.name(), kib(s.memory.live_bytes)))
        .collect::<Vec<_>>()
        .join(", ");
    md += ".\n\n## Memory per layer\n\n";
    for s in methods {
        let _ = writeln!(md, "{}:\n\n```\n{}```\n", s.method.name(), s.memory.table());
    }
    let _ = writeln!(md, "## HF PEFT check of the adapters\n\n```\n{}\n```", peft_check.replace("\n  ", "\n"));
    md
}

fn plots(out: &Path, ft_name: &str, base_val: (f64, f64), methods: &[MethodStats]) -> Result<()> {
    let with_base = |v: f64, c: &[(f64, f64)]| std::iter::once((0.0, v)).chain(c.iter().copied()).collect::<Vec<_>>();
    let mut ft =
        LinePlot::new(format!("validation loss on {ft_name}")).x_label("fine-tuning step").y_label("nats/char");
    let mut pre = LinePlot::new("validation loss on the pretraining text (forgetting)")
        .x_label("fine-tuning step")
        .y_label("nats/char");
    for s in methods {
        ft = ft.series(s.method.name(), with_base(base_val.0, &s.finetune_curve));
        pre = pre.series(s.method.name(), with_base(base_val.1, &s.pretrain_curve));
    }
    ft.write_png(out.join("finetune.png"))?;
    pre.write_png(out.join("forgetting.png"))
}

//! Target-projection SGD against backprop on the embedded 8x8 digits: an MLP 64-64-64-10
//! (tanh) trained four ways from the same initial weights and the same batch order per seed:
//! end-to-end backprop, tpSGD (each hidden layer fits a fixed random projection of the label),
//! DRTP (the projection is the hidden layer's error) and only the output layer trained.
//!
//!     cargo run --release --example tpsgd
//!     cargo run --release --example tpsgd -- --seeds 5 --epochs 60 --lrs 1e-3,3e-3 --out runs/tp
//!
//! Protocol: a fifth of the digits is the test set (split seed 0, the same for every run); a
//! fifth of the rest is a validation set. Every method trains on the remaining 1150 images for
//! each learning rate of `--lrs` and each seed; the learning rate is chosen per method by mean
//! validation accuracy, and only the chosen runs' test accuracy is reported. Then MLPs with 2,
//! 4 and 8 hidden layers run one epoch each, for the time per epoch and the activation memory.
//!
//! Activation memory: bytes of CPU storage created during a step and alive when a backward pass
//! starts (the graph's activations and saved values, the layer input and its target), the most
//! over a run's steps after the first, from the CPU backend's live-byte counter (a per-layer
//! accounting does not exist yet). On other devices it is not measured.
//!
//! The output folder (`runs/tpsgd`) gets `metrics.jsonl`, `loss.png` (the training loss of every
//! run, one after another), `accuracy.png` (validation accuracy per epoch, chosen rates, mean
//! over seeds), `memory.png` (activation memory against depth) and `results.md`; the last line
//! on stdout is the result.

use clap::Parser;
use plies::autodiff::{Error, Result};
use plies::nn::data::{digits, DataLoader, LabeledData};
use plies::nn::prelude::*;
use plies::nn::train::{CommonArgs, LinePlot, Run, Value};
use plies::peft::tpsgd::{backprop_step, LocalConfig, LocalNet, LocalTrainer, StepReport};
use std::fmt::Write as _;
use std::time::Instant;

#[derive(Parser, Clone, Debug)]
#[command(about = "tpSGD, DRTP, backprop and output-layer-only training of an MLP on the digits")]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Seeds per method: --seed, --seed + 1, ...
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Epochs per run (--steps, when given, sets the steps per run instead)
    #[arg(long, default_value_t = 40)]
    pub epochs: u64,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Hidden layer widths of the main MLP
    #[arg(long, value_delimiter = ',', default_value = "64,64")]
    pub hidden: Vec<usize>,
    /// Adam learning rates to choose from on the validation set, per method
    #[arg(long, value_delimiter = ',', default_value = "1e-3,3e-3,1e-2")]
    pub lrs: Vec<f64>,
    /// Hidden-layer counts of the depth study (width 64; one epoch each)
    #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
    pub depths: Vec<usize>,
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
pub enum Method {
    Backprop,
    TpSgd,
    Drtp,
    OutputOnly,
}

pub const METHODS: [Method; 4] = [Method::Backprop, Method::TpSgd, Method::Drtp, Method::OutputOnly];

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Backprop => "backprop",
            Method::TpSgd => "tpsgd",
            Method::Drtp => "drtp",
            Method::OutputOnly => "output_only",
        }
    }
}

/// One training run of one method, learning rate and seed.
#[derive(Clone, Debug)]
pub struct RunStats {
    pub method: Method,
    pub lr: f64,
    pub seed: u64,
    /// Validation accuracy after each epoch.
    pub val_curve: Vec<f64>,
    pub val_accuracy: f64,
    pub test_accuracy: f64,
    pub losses: Vec<f64>,
    pub secs_per_epoch: f64,
    /// `None` off the CPU.
    pub activation_bytes: Option<u64>,
}

/// What a run of the example leaves besides its output folder.
pub struct Outcome {
    /// The chosen runs, per method in `METHODS` order, one per seed.
    pub chosen: Vec<Vec<RunStats>>,
    /// (hidden layers, method, activation bytes, seconds per epoch).
    pub depth: Vec<(usize, Method, Option<u64>, f64)>,
    pub result_line: String,
}

impl Outcome {
    pub fn mean_test(&self, m: Method) -> f64 {
        mean(&self.chosen[index(m)].iter().map(|r| r.test_accuracy).collect::<Vec<_>>())
    }
}

fn index(m: Method) -> usize {
    METHODS.iter().position(|&x| x == m).expect("a method")
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn std(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len().max(2) - 1) as f64).sqrt()
}

fn accuracy(net: &LocalNet, set: &LabeledData, device: Device) -> Result<f64> {
    let batch = set.to_batch(device)?;
    let predicted = no_grad(|| net.try_forward(&batch.inputs))?.try_argmax(1, false)?.try_to_vec::<i32>()?;
    Ok(predicted.iter().zip(set.labels()).filter(|(p, y)| p == y).count() as f64 / set.len() as f64)
}

fn adam(lr: f64) -> impl FnMut(Vec<NamedParam>) -> Result<Box<dyn Optimizer>> {
    move |p| Ok(Box::new(Adam::new(p, AdamConfig::adam(lr))?) as Box<dyn Optimizer>)
}

/// The data sets of one run.
pub struct Sets<'a> {
    pub fit: &'a LabeledData,
    pub val: &'a LabeledData,
    pub test: &'a LabeledData,
}

/// Train `method` on `sets.fit` for `steps` steps; `log` sees every step's task loss.
#[allow(clippy::too_many_arguments)]
pub fn run_one(
    method: Method,
    sizes: &[usize],
    seed: u64,
    lr: f64,
    steps: u64,
    batch_size: usize,
    sets: &Sets,
    device: Device,
    log: &mut dyn FnMut(f64, u64) -> Result<()>,
) -> Result<RunStats> {
    let net = LocalNet::mlp(&mut Init::new(seed).with_device(device), sizes, Activation::Tanh)?;
    let classes = *sizes.last().expect("sizes");
    let loader = DataLoader::new(sets.fit, batch_size).shuffle(seed).drop_last(true).device(device);
    let per_epoch = loader.batches_per_epoch() as u64;
    if per_epoch == 0 {
        return Err(Error::invalid(
            "tpsgd",
            format!("batch size {batch_size} exceeds the {} training images", sets.fit.len()),
        ));
    }
    // The projections' seed is the run's seed: paired runs share them too.
    let mut local = match method {
        Method::TpSgd => Some(LocalTrainer::new(&net, classes, LocalConfig::tpsgd(seed), &mut adam(lr))?),
        Method::Drtp => Some(LocalTrainer::new(&net, classes, LocalConfig::drtp(seed), &mut adam(lr))?),
        _ => None,
    };
    if method == Method::OutputOnly {
        net.freeze("hidden")?;
    }
    let mut opt = Adam::new(net.trainable_parameters(), AdamConfig::adam(lr))?;
    let (mut losses, mut val_curve) = (Vec::new(), Vec::new());
    let (mut train_secs, mut activation_bytes, mut step) = (0.0, None::<u64>, 0u64);
    'epochs: for epoch in 0.. {
        let start = Instant::now();
        for batch in loader.epoch(epoch) {
            let batch = batch?;
            let report: StepReport = match &mut local {
                Some(t) => t.step(&net, &batch.inputs, &batch.targets)?,
                None => backprop_step(&net, &mut opt, &batch.inputs, &batch.targets)?,
            };
            if step > 0 {
                activation_bytes = report.activation_bytes.map(|b| b.max(activation_bytes.unwrap_or(0)));
            }
            losses.push(report.task_loss);
            log(report.task_loss, batch.len() as u64)?;
            step += 1;
            if step == steps {
                train_secs += start.elapsed().as_secs_f64();
                val_curve.push(accuracy(&net, sets.val, device)?);
                break 'epochs;
            }
        }
        train_secs += start.elapsed().as_secs_f64();
        val_curve.push(accuracy(&net, sets.val, device)?);
    }
    Ok(RunStats {
        method,
        lr,
        seed,
        val_accuracy: *val_curve.last().expect("one evaluation"),
        val_curve,
        test_accuracy: accuracy(&net, sets.test, device)?,
        losses,
        secs_per_epoch: train_secs * per_epoch as f64 / steps as f64,
        activation_bytes,
    })
}

pub fn train(args: &Args) -> Result<Outcome> {
    let device = args.common.device;
    if args.seeds == 0 || args.lrs.is_empty() || args.hidden.is_empty() {
        return Err(Error::invalid("tpsgd", "needs --seeds >= 1, at least one --lrs value and one --hidden width"));
    }
    let data = digits::load()?.scaled(1.0 / digits::MAX_PIXEL);
    let (train_set, test) = data.split(0.2, 0)?;
    let (fit, val) = train_set.split(0.2, 0)?;
    let sets = Sets { fit: &fit, val: &val, test: &test };
    let per_epoch = (fit.len() / args.batch_size) as u64;
    let steps = args.common.steps_or(args.epochs * per_epoch).max(1);
    let mut sizes = vec![data.feature_len()];
    sizes.extend(&args.hidden);
    sizes.push(data.num_classes());
    let seeds: Vec<u64> = (args.common.seed..args.common.seed + args.seeds).collect();

    let depth_steps = per_epoch.min(steps);
    let total =
        steps * (METHODS.len() * args.lrs.len() * seeds.len()) as u64 + depth_steps * 3 * args.depths.len() as u64;
    let mut run = Run::create("tpsgd", args.common.out_dir("tpsgd"), total)?;
    let sizes_text = sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("-");
    run.config(&[
        ("device", device.to_string().into()),
        ("sizes", sizes_text.clone().into()),
        ("seeds", (seeds.len() as u64).into()),
        ("first_seed", args.common.seed.into()),
        ("steps_per_run", steps.into()),
        ("batch_size", args.batch_size.into()),
        ("fit_examples", fit.len().into()),
        ("val_examples", val.len().into()),
        ("test_examples", test.len().into()),
    ])?;
    let mut global = 0u64;

    // Every method, learning rate and seed.
    let mut all: Vec<RunStats> = Vec::new();
    for &m in &METHODS {
        for &lr in &args.lrs {
            for &seed in &seeds {
                let mut log = |loss: f64, n: u64| {
                    global += 1;
                    run.step(global - 1, loss, n)
                };
                let r = run_one(m, &sizes, seed, lr, steps, args.batch_size, &sets, device, &mut log)?;
                run.log(&[
                    ("event", "run".into()),
                    ("method", m.name().into()),
                    ("lr", lr.into()),
                    ("seed", seed.into()),
                    ("val_accuracy", r.val_accuracy.into()),
                    ("test_accuracy", r.test_accuracy.into()),
                    ("secs_per_epoch", r.secs_per_epoch.into()),
                    ("activation_bytes", r.activation_bytes.map_or(Value::Float(f64::NAN), Value::from)),
                ])?;
                all.push(r);
            }
        }
    }
    // The learning rate of each method with the best mean validation accuracy.
    let mut chosen = Vec::new();
    for &m in &METHODS {
        let val_of = |lr: f64| {
            mean(&all.iter().filter(|r| r.method == m && r.lr == lr).map(|r| r.val_accuracy).collect::<Vec<_>>())
        };
        let best = args.lrs.iter().copied().fold(args.lrs[0], |b, lr| if val_of(lr) > val_of(b) { lr } else { b });
        chosen.push(all.iter().filter(|r| r.method == m && r.lr == best).cloned().collect::<Vec<_>>());
    }

    // Depth study: one epoch per depth, at each method's chosen rate, first seed.
    let mut depth = Vec::new();
    for &d in &args.depths {
        let mut sz = vec![data.feature_len()];
        sz.extend(std::iter::repeat_n(64, d));
        sz.push(data.num_classes());
        for m in [Method::Backprop, Method::TpSgd, Method::Drtp] {
            let mut log = |loss: f64, n: u64| {
                global += 1;
                run.step(global - 1, loss, n)
            };
            let lr = chosen[index(m)][0].lr;
            let r = run_one(m, &sz, seeds[0], lr, depth_steps, args.batch_size, &sets, device, &mut log)?;
            depth.push((d, m, r.activation_bytes, r.secs_per_epoch));
        }
    }

    let report = results_md(args, &sizes_text, steps, per_epoch, &all, &chosen, &depth);
    std::fs::write(run.dir().join("results.md"), &report)
        .map_err(|e| Error::msg(format!("writing {}: {e}", run.dir().join("results.md").display())))?;
    plots(&run, &chosen, &depth)?;
    run.println(report);

    let acc = |m: Method| mean(&chosen[index(m)].iter().map(|r| r.test_accuracy).collect::<Vec<_>>());
    let bytes = |d: usize, m: Method| {
        depth.iter().find(|e| e.0 == d && e.1 == m).and_then(|e| e.2).map_or(Value::Float(f64::NAN), Value::from)
    };
    let (d_lo, d_hi) = (args.depths.iter().min().copied().unwrap_or(0), args.depths.iter().max().copied().unwrap_or(0));
    let result_line = run.finish(&[
        ("backprop_test_accuracy", acc(Method::Backprop).into()),
        ("tpsgd_test_accuracy", acc(Method::TpSgd).into()),
        ("drtp_test_accuracy", acc(Method::Drtp).into()),
        ("output_only_test_accuracy", acc(Method::OutputOnly).into()),
        ("tpsgd_activation_bytes_shallowest", bytes(d_lo, Method::TpSgd)),
        ("tpsgd_activation_bytes_deepest", bytes(d_hi, Method::TpSgd)),
        ("backprop_activation_bytes_shallowest", bytes(d_lo, Method::Backprop)),
        ("backprop_activation_bytes_deepest", bytes(d_hi, Method::Backprop)),
    ])?;
    Ok(Outcome { chosen, depth, result_line })
}

fn kib(b: Option<u64>) -> String {
    b.map_or("n/a".into(), |b| format!("{:.1}", b as f64 / 1024.0))
}

fn pct(v: f64) -> String {
    format!("{:.1}", 100.0 * v)
}

fn results_md(
    args: &Args,
    sizes: &str,
    steps: u64,
    per_epoch: u64,
    all: &[RunStats],
    chosen: &[Vec<RunStats>],
    depth: &[(usize, Method, Option<u64>, f64)],
) -> String {
    let mut s = String::new();
    let seeds: Vec<String> = chosen[0].iter().map(|r| r.seed.to_string()).collect();
    let _ = writeln!(s, "# tpSGD on the digits\n");
    let _ = writeln!(
        s,
        "MLP {sizes} (tanh), Adam, batch {}, {steps} steps per run ({:.1} epochs of {per_epoch} batches), seeds {} \
         (paired: same initial weights, batch order and projections across methods), device {}.\n",
        args.batch_size,
        steps as f64 / per_epoch as f64,
        seeds.join(", "),
        args.common.device
    );
    let _ = writeln!(s, "## Accuracy (learning rate chosen per method on the validation set)\n");
    let _ = writeln!(
        s,
        "| method | lr | val acc % | test acc % mean ± sd | min..max | test acc - backprop per seed (points) | s / epoch | activation KiB |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    let bp: Vec<f64> = chosen[0].iter().map(|r| r.test_accuracy).collect();
    for runs in chosen {
        let t: Vec<f64> = runs.iter().map(|r| r.test_accuracy).collect();
        let v: Vec<f64> = runs.iter().map(|r| r.val_accuracy).collect();
        let diffs: Vec<String> = t.iter().zip(&bp).map(|(a, b)| format!("{:+.1}", 100.0 * (a - b))).collect();
        let lo = t.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} ± {} | {}..{} | {} | {:.4} | {} |",
            runs[0].method.name(),
            runs[0].lr,
            pct(mean(&v)),
            pct(mean(&t)),
            pct(std(&t)),
            pct(lo),
            pct(hi),
            diffs.join(", "),
            mean(&runs.iter().map(|r| r.secs_per_epoch).collect::<Vec<_>>()),
            kib(runs.iter().filter_map(|r| r.activation_bytes).max()),
        );
    }
    let m = |i: usize| mean(&chosen[i].iter().map(|r| r.test_accuracy).collect::<Vec<_>>()) * 100.0;
    let (bp, tp, dr, out) = (m(0), m(1), m(2), m(3));
    let verdict = |ok: bool| if ok { "holds" } else { "does NOT hold" };
    let _ = writeln!(s, "\nChecks (reference elsewhere: backprop 97.8, tpSGD 94.7, output-only 90.4):\n");
    let _ = writeln!(s, "- tpSGD within 5 points of backprop: {:.1} vs {:.1}, {}", tp, bp, verdict(bp - tp <= 5.0));
    let _ = writeln!(
        s,
        "- tpSGD at least 3 points above output-only: {:.1} vs {:.1}, {}",
        tp,
        out,
        verdict(tp - out >= 3.0)
    );
    let _ = writeln!(s, "- DRTP: {:.1} ({:+.1} points from backprop)", dr, dr - bp);

    let _ = writeln!(s, "\n## Validation accuracy % per learning rate (mean over seeds)\n");
    let _ = writeln!(s, "| method | {} |", args.lrs.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(s, "| --- |{}", " --- |".repeat(args.lrs.len()));
    for &mth in &METHODS {
        let cells: Vec<String> = args
            .lrs
            .iter()
            .map(|&lr| {
                pct(mean(
                    &all.iter().filter(|r| r.method == mth && r.lr == lr).map(|r| r.val_accuracy).collect::<Vec<_>>(),
                ))
            })
            .collect();
        let _ = writeln!(s, "| {} | {} |", mth.name(), cells.join(" | "));
    }

    let _ = writeln!(s, "\n## Depth: hidden layers of 64, one epoch at the chosen rates\n");
    let _ = writeln!(
        s,
        "| hidden layers | backprop KiB | tpSGD KiB | DRTP KiB | backprop s/epoch | tpSGD s/epoch | DRTP s/epoch |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- |");
    let mut ds: Vec<usize> = depth.iter().map(|e| e.0).collect();
    ds.dedup();
    for d in ds {
        let get = |m: Method| depth.iter().find(|e| e.0 == d && e.1 == m).expect("measured");
        let (b, t, r) = (get(Method::Backprop), get(Method::TpSgd), get(Method::Drtp));
        let _ =
            writeln!(s, "| {d} | {} | {} | {} | {:.4} | {:.4} | {:.4} |", kib(b.2), kib(t.2), kib(r.2), b.3, t.3, r.3);
    }
    let _ = writeln!(
        s,
        "\nActivation KiB: bytes of CPU storage made during a step and alive when a backward pass starts (the \
         graph's activations and saved values, the layer's input and target), the most over a run's steps after \
         the first, from the CPU backend's live-byte counter. Times: training steps only, no evaluation."
    );
    s
}

fn plots(run: &Run, chosen: &[Vec<RunStats>], depth: &[(usize, Method, Option<u64>, f64)]) -> Result<()> {
    let mut acc = LinePlot::new("val accuracy, mean of seeds").x_label("epoch").y_label("accuracy");
    for runs in chosen {
        let n = runs[0].val_curve.len();
        let pts = (0..n).map(|e| ((e + 1) as f64, mean(&runs.iter().map(|r| r.val_curve[e]).collect::<Vec<_>>())));
        acc = acc.series(runs[0].method.name(), pts.collect::<Vec<_>>());
    }
    acc.write_png(run.dir().join("accuracy.png"))?;
    let mut mem = LinePlot::new("activation KiB by depth").x_label("hidden layers").y_label("KiB");
    for m in [Method::Backprop, Method::TpSgd, Method::Drtp] {
        let pts: Vec<(f64, f64)> =
            depth.iter().filter(|e| e.1 == m).filter_map(|e| e.2.map(|b| (e.0 as f64, b as f64 / 1024.0))).collect();
        if !pts.is_empty() {
            mem = mem.series(m.name(), pts);
        }
    }
    mem.write_png(run.dir().join("memory.png"))
}

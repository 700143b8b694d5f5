//! Soak: many training steps in one process, watching for memory that grows step after step
//! (Burn issues #717, #2042 and #4792 are what that looks like). Workloads (BENCHMARKS.md):
//!   w2        W2, the MLP, 10,000 steps on the CPU backend
//!   w3        W3, the char GPT, 1,000 steps on the CPU backend
//!   w3_tiny   a tiny W3 on the GPU backend, 1,000 steps: vocab 65, d 32, 2 layers, 4 heads,
//!             context 32, batch 4 (a size lavapipe runs in milliseconds per step)
//!
//!   cargo bench --bench soak -- [--quick] [--only w2,w3,w3_tiny] [--out runs/soak] [--leak KIB]
//!
//! Every 100 steps it records the process's RSS (/proc/self/status VmRSS) and the backends'
//! memory counters (bytes in live storages; for the GPU also the pool's cached bytes). From
//! step 500 on, RSS and live bytes must stay within 5% of their value at step 500; each
//! workload prints PASS or FAIL and the exit code is 1 if any failed. Writes soak.md (table),
//! soak.jsonl and one PNG per workload (each series divided by its value at step 500) into
//! the output folder. `--quick` runs 600 steps of each (one sample past the reference);
//! `--leak KIB` keeps a KIB-KiB tensor per step, to show that the check catches growth.
//!
//! The GPU is `PLIES_DEVICE=gpu:N` if set, else adapter 0 (lavapipe counts); without an
//! adapter w3_tiny is skipped, or fails under `PLIES_REQUIRE_GPU=1`.

#[path = "../common/mod.rs"]
mod common;
mod report;

use common::Workload;
use plies::autodiff::{DType, Device, Error, Result, Tensor};
use plies::nn::layers::{Activation, GptConfig};
use std::path::PathBuf;
use std::time::Instant;

/// Samples are taken every this many steps.
const EVERY: usize = 100;
/// The step whose sample is the reference: warm-up is over by then.
const REFERENCE: usize = 500;
/// The largest allowed relative deviation from the reference after it.
const TOLERANCE: f64 = 0.05;

struct Args {
    quick: bool,
    only: Option<Vec<String>>,
    out: PathBuf,
    /// KiB kept alive after every step (a deliberate leak).
    leak_kib: usize,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut a = Args { quick: false, only: None, out: PathBuf::from("runs/soak"), leak_kib: 0 };
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        match s.as_str() {
            "--quick" => a.quick = true,
            "--only" => {
                let v = it.next().ok_or("--only needs a list: w2,w3,w3_tiny")?;
                a.only = Some(v.split(',').map(|w| w.trim().to_string()).collect());
            }
            "--out" => a.out = it.next().ok_or("--out needs a folder")?.into(),
            "--leak" => a.leak_kib = it.next().and_then(|v| v.parse().ok()).ok_or("--leak needs a size in KiB")?,
            "--bench" => {} // cargo bench passes it
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(a)
}

/// One workload to soak: its id, what it is, where it runs and how many steps.
struct Spec {
    id: &'static str,
    about: String,
    device: Device,
    steps: usize,
    leak_kib: usize,
}

/// Memory at one point of a run, taken between steps.
#[derive(Clone, Debug)]
pub struct Sample {
    pub step: usize,
    pub rss: u64,
    /// Bytes in live CPU storages.
    pub cpu_live: u64,
    /// Bytes in live GPU storages and in the GPU pool's cache (GPU workloads only).
    pub gpu_live: Option<u64>,
    pub gpu_cached: Option<u64>,
    /// The loss of the step just taken (None before the first).
    pub loss: Option<f64>,
    /// Mean milliseconds per step since the previous sample.
    pub ms_per_step: Option<f64>,
}

/// A soaked workload: its samples and the verdict on each watched quantity.
pub struct Outcome {
    pub id: &'static str,
    pub about: String,
    pub samples: Vec<Sample>,
    pub checks: Vec<Check>,
}

/// The largest deviation of one quantity from its reference sample.
pub struct Check {
    pub what: &'static str,
    pub reference: u64,
    /// The largest relative deviation, the step where it happened and its size in bytes.
    pub max_dev: f64,
    pub at_step: usize,
    pub delta: i64,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.max_dev <= TOLERANCE
    }
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(Check::passed)
    }
}

/// The process's resident set, from /proc/self/status (VmRSS, in kB).
fn rss_bytes() -> Result<u64> {
    let path = "/proc/self/status";
    let status = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or_else(|| Error::msg(format!("{path}: no readable VmRSS line")))?;
    Ok(kb * 1024)
}

fn sample(device: Device, step: usize, loss: Option<f64>, ms_per_step: Option<f64>) -> Result<Sample> {
    let backend = plies::core::backend(device)?;
    // Queued GPU work still holds its buffers; wait so that the counters read a step boundary.
    backend.synchronize()?;
    let gpu = matches!(device, Device::Gpu(_)).then(|| backend.memory());
    Ok(Sample {
        step,
        rss: rss_bytes()?,
        cpu_live: plies::core::cpu::live_bytes(),
        gpu_live: gpu.map(|m| m.live),
        gpu_cached: gpu.map(|m| m.cached),
        loss,
        ms_per_step,
    })
}

fn build(spec: &Spec) -> Result<Workload> {
    match spec.id {
        "w2" => Workload::w2(spec.device),
        "w3" => Workload::w3(spec.device),
        _ => Workload::gpt(tiny_w3(), 4, spec.device),
    }
}

fn tiny_w3() -> GptConfig {
    GptConfig {
        vocab_size: 65,
        context: 32,
        d_model: 32,
        n_layer: 2,
        n_head: 4,
        mlp_ratio: 4,
        dropout: 0.0,
        activation: Activation::GeluTanh,
        ln_eps: 1e-5,
    }
}

fn soak(spec: &Spec) -> Result<Outcome> {
    let mut w = build(spec)?;
    let mut samples = vec![sample(spec.device, 0, None, None)?];
    let mut since = Instant::now();
    let mut leaked = Vec::new();
    for step in 1..=spec.steps {
        let loss = w.step()?;
        if spec.leak_kib > 0 {
            leaked.push(Tensor::zeros([spec.leak_kib * 256], DType::F32, spec.device));
        }
        if step % EVERY == 0 || step == spec.steps {
            let taken = step - samples.last().map_or(0, |s| s.step);
            let ms = since.elapsed().as_secs_f64() * 1e3 / taken as f64;
            let loss = loss.value().to_scalar::<f64>()?;
            if !loss.is_finite() {
                return Err(Error::msg(format!("{}: loss is {loss} at step {step}", spec.id)));
            }
            let s = sample(spec.device, step, Some(loss), Some(ms))?;
            eprintln!(
                "{:>8} step {step:>6}: rss {:>8.2} MiB, cpu live {:>8.3} MiB{}, loss {loss:.4}, {ms:.2} ms/step",
                spec.id,
                report::mib(s.rss),
                report::mib(s.cpu_live),
                s.gpu_live.map_or(String::new(), |g| format!(", gpu live {:.3} MiB", report::mib(g))),
            );
            samples.push(s);
            since = Instant::now();
        }
    }
    let checks = checks(spec, &samples)?;
    Ok(Outcome { id: spec.id, about: spec.about.clone(), samples, checks })
}

/// A watched quantity: its name and how to read it from a sample.
type Quantity = (&'static str, fn(&Sample) -> u64);

/// RSS and the live bytes of every backend the workload uses, against step `REFERENCE`.
fn checks(spec: &Spec, samples: &[Sample]) -> Result<Vec<Check>> {
    let mut quantities: Vec<Quantity> = vec![("rss", |s| s.rss)];
    match spec.device {
        Device::Cpu => quantities.push(("cpu live", |s| s.cpu_live)),
        Device::Gpu(_) => {
            quantities.push(("gpu live", |s| s.gpu_live.unwrap_or(0)));
            quantities.push(("cpu live", |s| s.cpu_live));
        }
    }
    let reference = samples
        .iter()
        .find(|s| s.step == REFERENCE)
        .ok_or_else(|| Error::msg(format!("{}: no sample at step {REFERENCE} ({} steps)", spec.id, spec.steps)))?;
    Ok(quantities
        .into_iter()
        .map(|(what, get)| {
            let base = get(reference);
            let mut check = Check { what, reference: base, max_dev: 0.0, at_step: REFERENCE, delta: 0 };
            for s in samples.iter().filter(|s| s.step >= REFERENCE) {
                let dev = relative(get(s), base);
                if dev > check.max_dev {
                    check.max_dev = dev;
                    check.at_step = s.step;
                    check.delta = get(s) as i64 - base as i64;
                }
            }
            check
        })
        .collect())
}

/// |value - base| / base; any change from a zero base counts as unbounded.
fn relative(value: u64, base: u64) -> f64 {
    match (value, base) {
        (0, 0) => 0.0,
        (_, 0) => f64::INFINITY,
        (v, b) => v.abs_diff(b) as f64 / b as f64,
    }
}

/// The GPU to soak on, or why there is none.
fn gpu_device() -> std::result::Result<Device, String> {
    plies::init();
    let device = match std::env::var("PLIES_DEVICE").ok().filter(|s| !s.trim().is_empty()) {
        Some(s) => Device::parse(&s).map_err(|e| e.to_string())?,
        None => Device::Gpu(0),
    };
    let Device::Gpu(i) = device else {
        return Err("PLIES_DEVICE=cpu was given".into());
    };
    let gpu = plies::shaders::gpu(i).map_err(|e| e.to_string())?;
    eprintln!("soak: w3_tiny on {device}: {}", gpu.description());
    Ok(device)
}

fn run(a: &Args) -> Result<bool> {
    let want = |id: &str| a.only.as_ref().is_none_or(|o| o.iter().any(|w| w == id));
    let steps = |full: usize| if a.quick { REFERENCE + EVERY } else { full };
    let mut outcomes = Vec::new();
    let mut all_passed = true;
    let mut go = |spec: Spec| -> Result<()> {
        let t0 = Instant::now();
        let outcome = soak(&spec)?;
        println!("{}", report::verdict(&outcome, t0.elapsed().as_secs_f64()));
        all_passed &= outcome.passed();
        outcomes.push(outcome);
        Ok(())
    };
    if want("w2") {
        let about = "W2 MLP 64-256-256-10, batch 128, CPU".into();
        go(Spec { id: "w2", about, device: Device::Cpu, steps: steps(10_000), leak_kib: a.leak_kib })?;
    }
    if want("w3") {
        let about = "W3 char GPT (826,433 params), batch 16, CPU".into();
        go(Spec { id: "w3", about, device: Device::Cpu, steps: steps(1_000), leak_kib: a.leak_kib })?;
    }
    // Opened only now, so that the CPU workloads' RSS holds no GPU driver.
    if want("w3_tiny") {
        match gpu_device() {
            Ok(device) => {
                let about = format!("tiny W3 (d 32, 2 layers, 4 heads, context 32), batch 4, {device}");
                go(Spec { id: "w3_tiny", about, device, steps: steps(1_000), leak_kib: a.leak_kib })?;
            }
            Err(why) if std::env::var("PLIES_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
                println!("w3_tiny: FAIL: no GPU ({why}) and PLIES_REQUIRE_GPU=1");
                all_passed = false;
            }
            Err(why) => println!("w3_tiny: SKIP: no GPU ({why})"),
        }
    }
    for path in report::write(&a.out, &outcomes)? {
        println!("wrote {}", path.display());
    }
    Ok(all_passed)
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    match run(&a) {
        Ok(true) => println!("soak: PASS"),
        Ok(false) => {
            println!("soak: FAIL (a quantity moved more than {:.0}% from step {REFERENCE})", TOLERANCE * 100.0);
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

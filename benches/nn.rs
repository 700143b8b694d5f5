//! W2, W3, W4 and MoLA (BENCHMARKS.md): one training step of an MLP, of the char GPT, of
//! the char GPT with LoRA r=8 on a frozen base and with MoLA experts (2468 and 8888), ours
//! against PyTorch in the same run. Run: `cargo bench --bench nn [-- --steps N --only w3,w4
//! --threads N --no-torch]`. PyTorch is measured by `bench/torch_nn_reference.py` when
//! `python3 -c "import torch"` works; medians in milliseconds, ratio = ours / PyTorch.
//! Each workload also runs with anomaly detection on (`detect_anomaly`), to show what the
//! checks cost when on; off is the plain row (`--no-anomaly` skips the extra rows).
//! With W3 and W4 both run, their per-layer memory tables (`MemoryReport`, the second step
//! of each) are printed side by side.

mod common;

use common::Workload;
use plies::autodiff::{AnomalyGuard, Device};
use std::process::Command;
use std::time::Instant;

struct Args {
    steps: usize,
    warmup: usize,
    only: Option<String>,
    torch: bool,
    anomaly: bool,
    threads: Option<usize>,
}

fn args() -> Args {
    let mut a = Args { steps: 20, warmup: 3, only: None, torch: true, anomaly: true, threads: None };
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        match s.as_str() {
            "--steps" => a.steps = it.next().and_then(|v| v.parse().ok()).expect("--steps N"),
            "--warmup" => a.warmup = it.next().and_then(|v| v.parse().ok()).expect("--warmup N"),
            "--only" => a.only = it.next(),
            "--no-torch" => a.torch = false,
            "--no-anomaly" => a.anomaly = false,
            "--threads" => a.threads = Some(it.next().and_then(|v| v.parse().ok()).expect("--threads N")),
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

fn median_ms(warmup: usize, steps: usize, mut step: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        step();
    }
    let mut t: Vec<f64> = (0..steps)
        .map(|_| {
            let t0 = Instant::now();
            step();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[t.len() / 2]
}

fn w2(a: &Args, anomaly: bool) -> f64 {
    let _mode = AnomalyGuard::new(anomaly);
    let mut w = Workload::w2(Device::Cpu).unwrap();
    median_ms(a.warmup, a.steps * 10, || drop(w.step().unwrap()))
}

fn w3(a: &Args, anomaly: bool) -> f64 {
    let _mode = AnomalyGuard::new(anomaly);
    let mut w = Workload::w3(Device::Cpu).unwrap();
    median_ms(a.warmup, a.steps, || drop(w.step().unwrap()))
}

/// Medians of W3 and W4 steps taken in turn, so that their ratio compares the same
/// minutes of a machine whose speed drifts.
fn w3_w4(a: &Args, w3: bool, w4: bool) -> (Option<f64>, Option<f64>) {
    let mut three = w3.then(|| Workload::w3(Device::Cpu).unwrap());
    let mut four = w4.then(|| Workload::w4(Device::Cpu).unwrap());
    let (mut t3, mut t4) = (Vec::new(), Vec::new());
    for i in 0..a.warmup + a.steps {
        for (w, t) in [(&mut three, &mut t3), (&mut four, &mut t4)] {
            let Some(w) = w.as_mut() else { continue };
            let t0 = Instant::now();
            drop(w.step().unwrap());
            if i >= a.warmup {
                t.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let median = |mut t: Vec<f64>| {
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        t[t.len() / 2]
    };
    (w3.then(|| median(t3)), w4.then(|| median(t4)))
}

/// W3's and W4's memory tables side by side, measured on each one's second step.
fn memory_tables() {
    let report = |mut w: Workload| {
        w.step().unwrap();
        w.measured_step().unwrap()
    };
    let three = report(Workload::w3(Device::Cpu).unwrap()).table();
    let four = report(Workload::w4(Device::Cpu).unwrap()).table();
    let width = three.lines().map(str::len).max().unwrap_or(0);
    println!("\n{:<width$}   W4 (LoRA r=8, base frozen)", "W3");
    let (a, b): (Vec<&str>, Vec<&str>) = (three.lines().collect(), four.lines().collect());
    for i in 0..a.len().max(b.len()) {
        println!("{:<width$}   {}", a.get(i).unwrap_or(&""), b.get(i).unwrap_or(&""));
    }
    println!();
}

/// Medians of MoLA 2468 and 8888 steps taken in turn (the 8888 / 2468 ratio shows whether
/// cost follows top-k rather than the number of experts).
fn mola(a: &Args) -> (f64, f64) {
    let mut ws = [Workload::mola(Device::Cpu, "2,4,6,8").unwrap(), Workload::mola(Device::Cpu, "8,8,8,8").unwrap()];
    let mut t: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for i in 0..a.warmup + a.steps {
        for (w, t) in ws.iter_mut().zip(t.iter_mut()) {
            let t0 = Instant::now();
            drop(w.step().unwrap());
            if i >= a.warmup {
                t.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let [a, b] = t.map(|mut t| {
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        t[t.len() / 2]
    });
    (a, b)
}

/// PyTorch's medians, or None when torch is not importable.
fn torch(a: &Args) -> Option<serde_json::Value> {
    let ok = Command::new("python3").args(["-c", "import torch"]).output().ok()?.status.success();
    if !ok {
        eprintln!("(python3 cannot import torch: reporting ours alone)");
        return None;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/torch_nn_reference.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(["--steps", &a.steps.to_string(), "--warmup", &a.warmup.to_string()]);
    if let Some(o) = &a.only {
        cmd.args(["--only", o]);
    }
    if let Some(n) = a.threads {
        cmd.args(["--threads", &n.to_string()]);
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!("torch reference failed:\n{}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last()?).ok()
}

fn main() {
    let a = args();
    if let Some(n) = a.threads {
        // Before the first kernel builds rayon's global pool.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let want = |w: &str| a.only.as_deref().is_none_or(|o| o.split(',').any(|x| x == w));
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!("plies nn benchmarks: {threads} threads, {} steps (W2: {}), medians", a.steps, a.steps * 10);
    let mut ours = Vec::new();
    if want("w2") {
        ours.push(("W2 MLP 64-256-256-10 step", "w2_ms", w2(&a, false)));
        if a.anomaly {
            ours.push(("W2 step, anomaly detection on", "-", w2(&a, true)));
        }
    }
    let (w3_ms, w4_ms) = w3_w4(&a, want("w3"), want("w4"));
    if let Some(ms) = w3_ms {
        ours.push(("W3 char GPT step (826,433 params)", "w3_ms", ms));
    }
    if let Some(ms) = w4_ms {
        ours.push(("W4 LoRA r=8 step (65,536 trainable)", "w4_ms", ms));
    }
    let mola_ms = want("mola").then(|| mola(&a));
    if let Some((m2468, m8888)) = mola_ms {
        ours.push(("MoLA 2468 r=4 top-2 step", "mola2468_ms", m2468));
        ours.push(("MoLA 8888 r=4 top-2 step", "mola8888_ms", m8888));
    }
    if want("w3") && a.anomaly {
        ours.push(("W3 step, anomaly detection on", "-", w3(&a, true)));
    }
    let theirs = if a.torch { torch(&a) } else { None };
    if let Some(t) = &theirs {
        println!("PyTorch {} with {} threads", t["torch"], t["threads"]);
    }
    println!("{:<36} {:>10} {:>10} {:>7}", "workload", "plies ms", "torch ms", "ratio");
    for (name, key, ms) in ours {
        match theirs.as_ref().and_then(|t| t[key].as_f64()) {
            Some(tm) => println!("{name:<36} {ms:>10.3} {tm:>10.3} {:>6.2}x", ms / tm),
            None => println!("{name:<36} {ms:>10.3} {:>10} {:>7}", "-", "-"),
        }
    }
    if w3_ms.is_some() && w4_ms.is_some() {
        memory_tables();
    }
    if let (Some(w3), Some(w4)) = (w3_ms, w4_ms) {
        let tw = theirs.as_ref().and_then(|t| Some(t["w4_ms"].as_f64()? / t["w3_ms"].as_f64()?));
        let tw = tw.map_or("-".to_string(), |r| format!("{r:.2}x"));
        println!("{:<36} {:>10} {tw:>10}", "W4 / W3 (steps taken in turn)", format!("{:.2}x", w4 / w3));
    }
    if let Some((m2468, m8888)) = mola_ms {
        let tw = theirs.as_ref().and_then(|t| Some(t["mola8888_ms"].as_f64()? / t["mola2468_ms"].as_f64()?));
        let tw = tw.map_or("-".to_string(), |r| format!("{r:.2}x"));
        println!("{:<36} {:>10} {tw:>10}", "MoLA 8888 / 2468 (in turn)", format!("{:.2}x", m8888 / m2468));
    }
}

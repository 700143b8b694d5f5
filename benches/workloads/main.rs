//! The project's benchmark: `cargo bench --bench workloads -- [filters] [options]`.
//!
//! Runs the standard workloads of BENCHMARKS.md on Plies and, when PyTorch is importable,
//! the same workloads in PyTorch (`bench/torch_reference.py`, same thread count), each
//! PyTorch measurement right after ours, and prints per workload one line with both
//! medians and the ratio, then one JSON line.
//!
//! Filters are substrings of workload ids or group names (any matches). Options:
//!   --list        print the workload ids and exit
//!   --no-torch    measure ours only (also PLIES_BENCH_NO_TORCH=1)
//!   --quick       shorter warmup and measurement
//!   --rounds N    alternate ours/PyTorch N times per workload and report medians
//! PLIES_BENCH_PYTHON picks the interpreter (default python3).
//!
//! Groups live in their own modules, each with a `register(&mut Registry)`.

mod cpu;
mod harness;
mod torch;

use harness::{measure, median, Budget, Registry, Timing};
use std::time::Duration;

struct Options {
    filters: Vec<String>,
    list: bool,
    no_torch: bool,
    budget: Budget,
    rounds: usize,
}

fn options() -> Options {
    let mut o = Options {
        filters: Vec::new(),
        list: false,
        no_torch: std::env::var("PLIES_BENCH_NO_TORCH").is_ok_and(|v| !v.is_empty() && v != "0"),
        budget: Budget::default(),
        rounds: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--list" => o.list = true,
            "--no-torch" => o.no_torch = true,
            "--quick" => {
                o.budget.warmup = Duration::from_millis(100);
                o.budget.measure = Duration::from_millis(400);
                o.budget.min_iters = 5;
            }
            "--rounds" => o.rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(1).max(1),
            // cargo passes --bench to harness-less benchmarks; other flags are not ours.
            s if s.starts_with("--") => {}
            s => o.filters.push(s.to_string()),
        }
    }
    o
}

/// The 1-minute load average: other work on a shared machine skews both sides, and
/// PyTorch's spinning OpenMP threads suffer more from it than rayon's.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// The size of rayon's global pool, which the CPU backend runs on: RAYON_NUM_THREADS
/// when set, else one thread per logical CPU (rayon's own rule).
fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn main() {
    let opts = options();
    let mut reg = Registry::default();
    cpu::register(&mut reg);
    let chosen: Vec<_> = reg
        .workloads
        .iter()
        .filter(|w| opts.filters.is_empty() || opts.filters.iter().any(|f| w.id.contains(f.as_str()) || w.group == f))
        .collect();
    if opts.list {
        for w in &chosen {
            println!("{:<8} {}", w.group, w.id);
        }
        return;
    }
    let threads = rayon_threads();
    println!(
        "plies {} | {} | warmup {:?}, measure {:?} per side | load average {}",
        env!("CARGO_PKG_VERSION"),
        plies::core::backend(plies::core::Device::Cpu).map(|b| b.name()).unwrap_or_default(),
        opts.budget.warmup,
        opts.budget.measure,
        load_average()
    );
    let mut reference = if opts.no_torch {
        println!("PyTorch reference skipped (--no-torch / PLIES_BENCH_NO_TORCH)");
        None
    } else {
        match torch::Torch::start(threads) {
            Ok(t) => {
                println!("PyTorch reference: {}", t.header);
                Some(t)
            }
            Err(why) => {
                println!("PyTorch reference unavailable ({why}); printing ours alone");
                None
            }
        }
    };
    println!("{:<7} {:<26} {:>12} {:>12} {:>7}  unit", "group", "workload", "ours", "pytorch", "ratio");
    for w in chosen {
        let mut call = (w.setup)();
        let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let mut missing = None;
        let mut spread = (f64::INFINITY, 0.0f64, 0usize);
        for _ in 0..opts.rounds {
            let t: Timing = measure(&mut *call, opts.budget);
            spread = (spread.0.min(t.min_s), spread.1.max(t.max_s), spread.2 + t.iters);
            let ours_fig = w.unit.figure(w.amount, t.median_s);
            ours.push(ours_fig);
            if let Some(r) = reference.as_mut() {
                match r.run(&w.id) {
                    torch::Reply::Timed { median_s } => {
                        let fig = w.unit.figure(w.amount, median_s);
                        theirs.push(fig);
                        ratios.push(w.unit.ratio(ours_fig, fig));
                    }
                    torch::Reply::Missing(why) => missing = Some(why),
                }
            }
        }
        drop(call);
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            (!v.is_empty()).then(|| median(v))
        };
        let (o, t, r) = (med(&mut ours).unwrap(), med(&mut theirs), med(&mut ratios));
        let show = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
        println!("{:<7} {:<26} {:>12.2} {:>12} {:>7}  {}", w.group, w.id, o, show(t, 2), show(r, 3), w.unit.label());
        if let Some(why) = &missing {
            println!("        (pytorch: {why})");
        }
        let num = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.4}"));
        println!(
            "{{\"bench\":\"workloads\",\"group\":\"{}\",\"id\":\"{}\",\"unit\":\"{}\",\"ours\":{},\"pytorch\":{},\"ratio\":{},\"ours_min_ms\":{},\"ours_max_ms\":{},\"ours_iters\":{},\"threads\":{},\"rounds\":{}}}",
            w.group,
            w.id,
            w.unit.label(),
            num(Some(o)),
            num(t),
            num(r),
            num(Some(spread.0 * 1e3)),
            num(Some(spread.1 * 1e3)),
            spread.2,
            threads,
            opts.rounds
        );
    }
    println!("load average at the end: {}", load_average());
}

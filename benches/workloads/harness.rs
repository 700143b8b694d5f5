//! A small benchmark harness: named workloads, each timed as a median over repeated calls,
//! printed beside the same workload in PyTorch (see `torch.rs`) as a ratio.
//!
//! Speed is only ever reported as a ratio to a reference measured in the same run: the
//! shared machines drift by up to 2x between runs, so absolute figures are context.

use std::time::{Duration, Instant};

/// What a workload's figure counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unit {
    /// Floating-point operations per second, in 1e9.
    GflopS,
    /// Bytes moved (read + written once) per second, in 1e9.
    GbS,
    /// Milliseconds per call (lower is better): for whole training steps.
    #[allow(dead_code)]
    Ms,
}

impl Unit {
    pub fn label(self) -> &'static str {
        match self {
            Unit::GflopS => "GFLOP/s",
            Unit::GbS => "GB/s",
            Unit::Ms => "ms",
        }
    }

    /// The figure for one call taking `seconds` that does `amount` flops or bytes.
    pub fn figure(self, amount: f64, seconds: f64) -> f64 {
        match self {
            Unit::GflopS | Unit::GbS => amount / seconds / 1e9,
            Unit::Ms => seconds * 1e3,
        }
    }

    /// Ours relative to the reference, > 1 when ours is faster.
    pub fn ratio(self, ours: f64, reference: f64) -> f64 {
        match self {
            Unit::GflopS | Unit::GbS => ours / reference,
            Unit::Ms => reference / ours,
        }
    }
}

/// The timed call of a workload, built once (inputs allocated outside the timing).
pub type Call = Box<dyn FnMut()>;

/// A named workload. `id` is shared with `bench/torch_reference.py`, which measures the
/// same computation under the same name.
pub struct Workload {
    pub id: String,
    pub group: &'static str,
    pub unit: Unit,
    /// Flops or bytes per call (ignored for `Unit::Ms`).
    pub amount: f64,
    pub setup: Box<dyn Fn() -> Call>,
}

/// All workloads, in the order they run. Each group module adds its own with `add`.
#[derive(Default)]
pub struct Registry {
    pub workloads: Vec<Workload>,
}

impl Registry {
    pub fn add(
        &mut self,
        group: &'static str,
        id: impl Into<String>,
        unit: Unit,
        amount: f64,
        setup: impl Fn() -> Call + 'static,
    ) {
        self.workloads.push(Workload { id: id.into(), group, unit, amount, setup: Box::new(setup) });
    }
}

/// Median and spread of per-call times.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub iters: usize,
}

/// How long to spend per measurement.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub warmup: Duration,
    pub measure: Duration,
    pub min_iters: usize,
    pub max_iters: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            warmup: Duration::from_millis(300),
            measure: Duration::from_millis(1500),
            min_iters: 7,
            max_iters: 2000,
        }
    }
}

/// Warm up (at least twice, and for `budget.warmup`), then time single calls until the
/// measurement budget or `max_iters` is used, and take the median.
pub fn measure(call: &mut dyn FnMut(), budget: Budget) -> Timing {
    let start = Instant::now();
    let mut warm = 0;
    while warm < 2 || start.elapsed() < budget.warmup {
        call();
        warm += 1;
    }
    let per_call = start.elapsed().as_secs_f64() / warm as f64;
    let iters = ((budget.measure.as_secs_f64() / per_call) as usize).clamp(budget.min_iters, budget.max_iters);
    let mut times: Vec<f64> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            call();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    Timing { median_s: median(&times), min_s: times[0], max_s: times[times.len() - 1], iters }
}

/// Median of sorted values.
pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

/// Keep the optimiser from discarding a result.
pub fn keep<T>(v: T) {
    std::hint::black_box(v);
}

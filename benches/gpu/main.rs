//! GPU workloads of BENCHMARKS.md, printed with the adapter's name, each followed by one
//! JSON line (`id`, `unit`, `value`, details) that scripts/gpu_bench.sh pairs with the line
//! of the same id from bench/torch_gpu_reference.py:
//!   W1      f32 matmul n x n (TFLOP/s), n = 1024, 2048, 4096, 8192 by default
//!   W6      elementwise add of 16M f32 (GB/s moved), 64 MiB host->device and back (GB/s)
//!   W3      char GPT training step (ms), see train.rs
//!   W5      GPT-2-small-sized training step (ms)
//!   launch  a tiny GPT's step of many small kernels, bind groups created vs reused
//!
//!   cargo bench --bench gpu -- [--only w1,w6,w3,w5,launch] [--small] [--sizes 256,512]
//!       [--w6-mib 8] [--reps 5] [--steps N] [--warmup N] [--rounds N] [--no-check]
//!
//! The adapter is `PLIES_DEVICE=gpu:N` if set, else adapter 0 (the best). `--small` (or
//! PLIES_GPU_BENCH_SMALL=1) shrinks every workload to sizes a software adapter finishes in
//! seconds (W3 and W5 under their own ids); on a software adapter (lavapipe) that is the
//! default. Only correctness and ratios measured in one run mean anything there.

mod train;

use plies::core::{Array, DType, Device, Distribution, Result};
use plies::shaders::GpuBackend;
use std::sync::Arc;
use std::time::Instant;

struct Opts {
    sizes: Option<Vec<usize>>,
    w6_mib: Option<usize>,
    reps: usize,
    check: bool,
    only: Option<Vec<String>>,
    small: bool,
    steps: Option<usize>,
    warmup: Option<usize>,
    rounds: usize,
}

/// The device under test, for every workload.
pub struct Ctx {
    pub device: Device,
    pub gpu: Arc<GpuBackend>,
    pub adapter: String,
}

/// One JSON line: `id`, `unit` and `value` (what the comparison reads), the adapter, and
/// any further numbers.
pub fn json_line(ctx: &Ctx, id: &str, unit: &str, value: f64, extra: &[(&str, f64)]) {
    let mut line = format!(
        "{{\"bench\":\"gpu\",\"side\":\"plies\",\"id\":\"{id}\",\"unit\":\"{unit}\",\"value\":{value:.6},\"adapter\":{:?}",
        ctx.adapter
    );
    for (k, v) in extra {
        line.push_str(&format!(",\"{k}\":{v:.6}"));
    }
    line.push('}');
    println!("{line}");
}

fn parse_args() -> std::result::Result<Opts, String> {
    let mut o = Opts {
        sizes: None,
        w6_mib: None,
        reps: 5,
        check: true,
        only: None,
        small: std::env::var("PLIES_GPU_BENCH_SMALL").is_ok_and(|v| !v.is_empty() && v != "0"),
        steps: None,
        warmup: None,
        rounds: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--sizes" => {
                let v = value("--sizes")?;
                o.sizes = Some(
                    v.split(',')
                        .map(|s| s.trim().parse().map_err(|_| format!("bad size `{s}`")))
                        .collect::<std::result::Result<_, _>>()?,
                );
            }
            "--w6-mib" => o.w6_mib = Some(value("--w6-mib")?.parse().map_err(|_| "bad --w6-mib")?),
            "--reps" => o.reps = value("--reps")?.parse::<usize>().map_err(|_| "bad --reps")?.max(1),
            "--no-check" => o.check = false,
            "--only" => o.only = Some(value("--only")?.split(',').map(|s| s.trim().to_lowercase()).collect()),
            "--small" => o.small = true,
            "--steps" => o.steps = Some(value("--steps")?.parse::<usize>().map_err(|_| "bad --steps")?.max(1)),
            "--warmup" => o.warmup = Some(value("--warmup")?.parse::<usize>().map_err(|_| "bad --warmup")?.max(1)),
            "--rounds" => o.rounds = value("--rounds")?.parse::<usize>().map_err(|_| "bad --rounds")?.max(1),
            // cargo bench passes --bench; ignore it and other harness flags.
            s if s.starts_with("--") => {}
            s => return Err(format!("unexpected argument `{s}`")),
        }
    }
    Ok(o)
}

fn pick_gpu() -> Result<Device> {
    plies::init();
    let device = match std::env::var("PLIES_DEVICE").ok().filter(|s| !s.is_empty()) {
        Some(s) => plies::choose_device(Some(&s))?,
        None => Device::Gpu(0),
    };
    if device == Device::Cpu {
        return Err(plies::core::Error::msg("the GPU bench needs a GPU: PLIES_DEVICE=cpu was given"));
    }
    plies::shaders::gpu_of(device).ok_or_else(|| plies::core::Error::msg("no GPU adapter"))?;
    Ok(device)
}

fn w1(ctx: &Ctx, n: usize, reps: usize, check: bool) -> Result<()> {
    let device = ctx.device;
    let backend = plies::core::backend(device)?;
    let dist = Distribution::Uniform { lo: -1.0, hi: 1.0 };
    let a = Array::random([n, n], dist, 1, DType::F32, device)?;
    let b = Array::random([n, n], dist, 2, DType::F32, device)?;
    // Warm-up: compiles the kernel and, on real GPUs, autotunes this shape class.
    let c = a.matmul(&b)?;
    backend.synchronize()?;
    let t = Instant::now();
    for _ in 0..reps {
        drop(a.matmul(&b)?);
    }
    backend.synchronize()?;
    let secs = t.elapsed().as_secs_f64() / reps as f64;
    let tflops = 2.0 * (n as f64).powi(3) / secs / 1e12;
    // Check one row against f64 on the CPU.
    let mut checked = "unchecked";
    if check {
        let row = n / 2;
        let got = c.narrow(0, row, 1)?.to_vec::<f64>()?;
        let ar = a.narrow(0, row, 1)?.to_device(Device::Cpu)?.to_dtype(DType::F64)?;
        let bc = b.to_device(Device::Cpu)?.to_dtype(DType::F64)?;
        let want = ar.matmul(&bc)?.to_vec::<f64>()?;
        let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
        if worst > 1e-5 * n as f64 {
            return Err(plies::core::Error::msg(format!("W1 n={n}: row {row} differs from the CPU by {worst}")));
        }
        checked = "checked";
    }
    let tile = ctx.gpu.matmul_choice(n, n, n).to_string();
    println!("W1 matmul n={n:5}: {:9.3} ms  {tflops:8.3} TFLOP/s  (tile {tile}, {checked})", secs * 1e3);
    json_line(
        ctx,
        &format!("w1_matmul_n{n}"),
        "TFLOP/s",
        tflops,
        &[("ms", secs * 1e3), ("checked", check as u8 as f64)],
    );
    Ok(())
}

fn w6(ctx: &Ctx, mib: usize, reps: usize) -> Result<()> {
    let device = ctx.device;
    let backend = plies::core::backend(device)?;
    let n = mib * (1 << 20) / 4;
    let bytes = (n * 4) as f64;
    let host: Vec<f32> = (0..n).map(|i| (i % 1000) as f32).collect();
    let a = Array::from_slice(&host, [n], device)?;
    let b = Array::from_slice(&host, [n], device)?;
    drop(a.add(&b)?);
    backend.synchronize()?;
    let t = Instant::now();
    for _ in 0..reps {
        drop(a.add(&b)?);
    }
    backend.synchronize()?;
    let add_s = t.elapsed().as_secs_f64() / reps as f64;
    let add_gbs = 3.0 * bytes / add_s / 1e9;

    let mut h2d = 0.0;
    for _ in 0..reps {
        let v = host.clone();
        let t = Instant::now();
        let up = Array::from_vec(v, [n], device)?;
        backend.synchronize()?;
        h2d += t.elapsed().as_secs_f64();
        drop(up);
    }
    let h2d_gbs = bytes * reps as f64 / h2d / 1e9;

    let sum = a.add(&b)?;
    backend.synchronize()?;
    let mut d2h = 0.0;
    let mut ok = true;
    for _ in 0..reps {
        let t = Instant::now();
        let v = sum.to_vec::<f32>()?;
        d2h += t.elapsed().as_secs_f64();
        ok &= v[n - 1] == 2.0 * host[n - 1] && v[n / 3] == 2.0 * host[n / 3];
    }
    if !ok {
        return Err(plies::core::Error::msg("W6: the add read back wrong values"));
    }
    let d2h_gbs = bytes * reps as f64 / d2h / 1e9;
    println!(
        "W6 add {n} f32: {:.3} ms, {add_gbs:.2} GB/s;  {mib} MiB H2D {h2d_gbs:.2} GB/s, D2H {d2h_gbs:.2} GB/s",
        add_s * 1e3
    );
    // W6's add is 16M elements (64 MiB per operand); other sizes get their own ids.
    let add_id = if mib == 64 { "w6_add_16m".to_string() } else { format!("w6_add_{mib}mib") };
    json_line(ctx, &add_id, "GB/s", add_gbs, &[("ms", add_s * 1e3)]);
    json_line(ctx, &format!("w6_h2d_{mib}mib"), "GB/s", h2d_gbs, &[]);
    json_line(ctx, &format!("w6_d2h_{mib}mib"), "GB/s", d2h_gbs, &[]);
    Ok(())
}

fn run() -> Result<()> {
    let opts = parse_args().map_err(plies::core::Error::msg)?;
    let device = pick_gpu()?;
    let gpu = plies::shaders::gpu_of(device).expect("opened by pick_gpu");
    let ctx = Ctx { device, adapter: gpu.description().to_string(), gpu };
    println!("GPU bench on {device}: {}", ctx.adapter);
    let small = opts.small || ctx.gpu.is_software();
    if ctx.gpu.is_software() {
        println!("(software adapter: small sizes; its timings say nothing about GPUs)");
    } else if small {
        println!("(--small: small sizes)");
    }
    let want = |w: &str| opts.only.as_ref().is_none_or(|o| o.iter().any(|x| x == w));
    let mut failed = Vec::new();
    let mut check = |what: String, r: Result<()>| {
        if let Err(e) = r {
            println!("{what}: FAILED: {e}");
            failed.push(what);
        }
    };
    if want("w1") {
        let sizes = opts.sizes.clone().unwrap_or(if small { vec![128, 256] } else { vec![1024, 2048, 4096, 8192] });
        for &n in &sizes {
            check(format!("W1 n={n}"), w1(&ctx, n, opts.reps, opts.check));
        }
    }
    if want("w6") {
        let mib = opts.w6_mib.unwrap_or(if small { 4 } else { 64 });
        check("W6".into(), w6(&ctx, mib, opts.reps));
    }
    // W3 warms up longer: its step is short, and the bind group cache settles in a few
    // dozen steps. bench/torch_gpu_reference.py uses the same counts.
    let counts = |warmup: usize, steps: usize| {
        let (w, s) = if small { (2, 3) } else { (warmup, steps) };
        (opts.warmup.unwrap_or(w), opts.steps.unwrap_or(s))
    };
    if want("w3") {
        let (warmup, steps) = counts(30, 20);
        check("W3".into(), train::step_workload(&ctx, &train::w3(small), warmup, steps));
    }
    if want("w5") {
        let (warmup, steps) = counts(3, 10);
        check("W5".into(), train::step_workload(&ctx, &train::w5(small), warmup, steps));
    }
    if want("launch") {
        let steps = opts.steps.unwrap_or(if small { 5 } else { 20 });
        check("launch".into(), train::launch_workload(&ctx, opts.rounds, steps));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(plies::core::Error::msg(format!("failed: {}", failed.join(", "))))
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("gpu bench: {e}");
        std::process::exit(1);
    }
}

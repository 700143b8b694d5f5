//! GPU workloads of BENCHMARKS.md, printed with the adapter's name, each followed by one
//! JSON line:
//!   W1  f32 matmul n x n (TFLOP/s), n = 1024, 2048, 4096, 8192 by default
//!   W6  elementwise add of 16M f32 (GB/s moved), 64 MiB host->device and device->host (GB/s)
//! (W5, a GPT-2-small training step, comes with plies-nn.)
//!
//!   cargo bench --bench gpu -- [--sizes 256,512] [--w6-mib 8] [--reps 5] [--no-check]
//!
//! The adapter is `PLIES_DEVICE=gpu:N` if set, else adapter 0 (the best). On a software
//! adapter (lavapipe) the defaults shrink to sizes that finish in seconds: only correctness
//! means anything there.

use plies::core::{Array, DType, Device, Distribution, Result};
use std::time::Instant;

struct Opts {
    sizes: Option<Vec<usize>>,
    w6_mib: Option<usize>,
    reps: usize,
    check: bool,
}

fn parse_args() -> std::result::Result<Opts, String> {
    let mut o = Opts { sizes: None, w6_mib: None, reps: 5, check: true };
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

fn w1(device: Device, n: usize, reps: usize, check: bool, adapter: &str) -> Result<()> {
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
    let tile = plies::shaders::gpu_of(device).map(|g| g.matmul_choice(n, n, n).to_string()).unwrap_or_default();
    println!("W1 matmul n={n:5}: {:9.3} ms  {tflops:8.3} TFLOP/s  (tile {tile}, {checked})", secs * 1e3);
    println!(
        "{{\"workload\":\"W1\",\"adapter\":{adapter:?},\"n\":{n},\"ms\":{:.4},\"tflops\":{tflops:.4},\"tile\":\"{tile}\",\"checked\":{check}}}",
        secs * 1e3
    );
    Ok(())
}

fn w6(device: Device, mib: usize, reps: usize, adapter: &str) -> Result<()> {
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
    println!(
        "{{\"workload\":\"W6\",\"adapter\":{adapter:?},\"elements\":{n},\"add_ms\":{:.4},\"add_gbs\":{add_gbs:.3},\"mib\":{mib},\"h2d_gbs\":{h2d_gbs:.3},\"d2h_gbs\":{d2h_gbs:.3}}}",
        add_s * 1e3
    );
    Ok(())
}

fn run() -> Result<()> {
    let opts = parse_args().map_err(plies::core::Error::msg)?;
    let device = pick_gpu()?;
    let gpu = plies::shaders::gpu_of(device).expect("opened by pick_gpu");
    let adapter = gpu.description().to_string();
    println!("GPU bench on {device}: {adapter}");
    let software = gpu.is_software();
    if software {
        println!("(software adapter: small default sizes; its timings say nothing about GPUs)");
    }
    let sizes = opts.sizes.clone().unwrap_or(if software { vec![128, 256] } else { vec![1024, 2048, 4096, 8192] });
    for &n in &sizes {
        if let Err(e) = w1(device, n, opts.reps, opts.check, &adapter) {
            println!("W1 matmul n={n}: skipped: {e}");
        }
    }
    let mib = opts.w6_mib.unwrap_or(if software { 4 } else { 64 });
    w6(device, mib, opts.reps, &adapter)?;
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("gpu bench: {e}");
        std::process::exit(1);
    }
}

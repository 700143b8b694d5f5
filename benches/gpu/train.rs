//! Training-step workloads on the GPU: W3 (the char GPT), W5 (the same architecture at
//! GPT-2-small size) and `launch`, a tiny GPT whose step is hundreds of small kernels, timed
//! with the bind group cache off and on in alternating rounds (the launch overhead).
//!
//! A step is forward, cross-entropy, backward, AdamW and zero_grad, then `synchronize`, so
//! that each timed step includes its GPU work. bench/torch_gpu_reference.py times the same
//! steps (naive attention, f32, TF32 off) under the same ids.

use crate::{json_line, Ctx};
use plies::autodiff::rng::Rng;
use plies::autodiff::{Device, Tensor};
use plies::core::Result;
use plies::nn::layers::{Activation, Gpt, GptConfig};
use plies::nn::loss::{cross_entropy, CrossEntropy};
use plies::nn::optim::{Adam, AdamConfig, Optimizer};
use plies::nn::{Init, Layer, Module};
use std::time::Instant;

/// A workload's model, batch and expected parameter count.
pub struct Shape {
    pub id: &'static str,
    pub config: GptConfig,
    pub batch: usize,
    pub params: Option<usize>,
}

fn gpt(vocab: usize, context: usize, d: usize, layers: usize, heads: usize) -> GptConfig {
    GptConfig {
        vocab_size: vocab,
        context,
        d_model: d,
        n_layer: layers,
        n_head: heads,
        mlp_ratio: 4,
        dropout: 0.0,
        activation: Activation::GeluTanh,
        ln_eps: 1e-5,
    }
}

/// W3 (BENCHMARKS.md): vocab 65, d 128, 4 layers, 4 heads, context 128, batch 16; `small`
/// takes batch 2 (under its own id).
pub fn w3(small: bool) -> Shape {
    let (id, batch) = if small { ("w3_small_step", 2) } else { ("w3_step", 16) };
    Shape { id, config: GptConfig::char_small(), batch, params: Some(826_433) }
}

/// W5: vocab 50304, d 768, 12 layers, 12 heads, context 1024, batch 8; `small` shrinks it
/// to something a software adapter finishes in seconds (a different id, never compared
/// with the real one).
pub fn w5(small: bool) -> Shape {
    if small {
        Shape { id: "w5_small_step", config: gpt(512, 128, 128, 2, 2), batch: 2, params: None }
    } else {
        Shape { id: "w5_step", config: gpt(50304, 1024, 768, 12, 12), batch: 8, params: Some(163_159_680) }
    }
}

/// Many tiny kernels: vocab 65, d 32, 4 layers, 4 heads, context 16, batch 2.
pub fn launch() -> Shape {
    Shape { id: "launch_step", config: gpt(65, 16, 32, 4, 4), batch: 2, params: None }
}

/// A model of `shape` built on `device` with its AdamW and one fixed batch of tokens.
struct Run {
    model: Gpt,
    opt: Adam,
    x: Tensor,
    y: Tensor,
    device: Device,
}

impl Run {
    fn new(shape: &Shape, device: Device) -> Result<Run> {
        let model = Gpt::new(&mut Init::new(0).with_device(device), shape.config.clone());
        if let Some(n) = shape.params {
            assert_eq!(model.num_params(), n, "{} parameter count", shape.id);
        }
        let opt = Adam::new(model.named_parameters(), AdamConfig::adamw(1e-4, 0.01))?;
        let (b, t, v) = (shape.batch, shape.config.context, shape.config.vocab_size);
        let mut rng = Rng::new(1);
        let ids: Vec<i32> = (0..b * (t + 1)).map(|_| rng.below(v as u64) as i32).collect();
        let ids = Tensor::from_vec(ids, [b, t + 1], device);
        let (x, y) = (ids.try_narrow(1, 0, t)?.try_contiguous()?, ids.try_narrow(1, 1, t)?.try_contiguous()?);
        Ok(Run { model, opt, x, y, device })
    }

    /// One step, waited for; the loss stays on the device.
    fn step(&mut self) -> Result<Tensor> {
        let loss = cross_entropy(&self.model.try_forward(&self.x)?, &self.y, CrossEntropy::default())?;
        loss.backward()?;
        self.opt.step()?;
        self.opt.zero_grad();
        plies::core::backend(self.device)?.synchronize()?;
        Ok(loss)
    }
}

/// What the backend did in some steps, per step.
struct PerStep {
    dispatches: f64,
    submissions: f64,
    readbacks: f64,
    bind_groups: f64,
    record_us: f64,
    /// Milliseconds outside submission and device waits: the host's own work.
    host_ms: f64,
}

/// `wall_ms`: the steps' total time.
fn per_step(ctx: &Ctx, before: plies::shaders::Counters, steps: usize, wall_ms: f64) -> PerStep {
    let c = ctx.gpu.counters();
    let n = steps as f64;
    let dispatches = (c.dispatches - before.dispatches) as f64;
    PerStep {
        dispatches: dispatches / n,
        submissions: (c.submissions - before.submissions) as f64 / n,
        readbacks: (c.readbacks - before.readbacks) as f64 / n,
        bind_groups: (c.bind_groups - before.bind_groups) as f64 / n,
        record_us: (c.record_ns - before.record_ns) as f64 / 1e3 / dispatches.max(1.0),
        host_ms: (wall_ms - (c.device_ns - before.device_ns) as f64 / 1e6) / n,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Milliseconds of each of `steps` steps.
fn time_steps(run: &mut Run, steps: usize) -> Result<Vec<f64>> {
    (0..steps)
        .map(|_| {
            let t = Instant::now();
            run.step()?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        })
        .collect()
}

/// Time `shape`'s step: `warmup` steps (compiling and tuning kernels), then the median of
/// `steps`; the first loss is checked against ln(vocab), what an untrained model predicts.
pub fn step_workload(ctx: &Ctx, shape: &Shape, warmup: usize, steps: usize) -> Result<()> {
    let t0 = Instant::now();
    let mut run = Run::new(shape, ctx.device)?;
    let first = run.step()?.value().to_scalar::<f64>()?;
    let expect = (shape.config.vocab_size as f64).ln();
    // NaN fails too.
    if (first - expect).abs().is_nan() || (first - expect).abs() >= 0.5 {
        return Err(plies::core::Error::msg(format!("{}: first loss {first}, expected about {expect:.3}", shape.id)));
    }
    for _ in 1..warmup {
        run.step()?;
    }
    let setup_s = t0.elapsed().as_secs_f64();
    let before = ctx.gpu.counters();
    let times = time_steps(&mut run, steps)?;
    let per = per_step(ctx, before, steps, times.iter().sum());
    let ms = median(times);
    let last = run.step()?.value().to_scalar::<f64>()?;
    let peak_gib = ctx.gpu.pool_stats().peak as f64 / (1u64 << 30) as f64;
    let c = &shape.config;
    println!(
        "{} ({} params; d {}, {} layers, {} heads, context {}, vocab {}, batch {}): {ms:.3} ms/step (median of {steps}), \
         peak {peak_gib:.2} GiB; per step {:.0} dispatches, {:.1} submits, {:.1} readbacks, {:.1} new bind groups, \
         {:.3} ms of host work (outside submit and waits), {:.2} us recording per dispatch; loss {first:.4} -> {last:.4}; setup {setup_s:.1} s",
        shape.id,
        run.model.num_params(),
        c.d_model,
        c.n_layer,
        c.n_head,
        c.context,
        c.vocab_size,
        shape.batch,
        per.dispatches,
        per.submissions,
        per.readbacks,
        per.bind_groups,
        per.host_ms,
        per.record_us
    );
    json_line(
        ctx,
        shape.id,
        "ms",
        ms,
        &[
            ("params", run.model.num_params() as f64),
            ("batch", shape.batch as f64),
            ("steps", steps as f64),
            ("peak_gib", peak_gib),
            ("dispatches", per.dispatches),
            ("submissions", per.submissions),
            ("bind_groups", per.bind_groups),
            ("record_us", per.record_us),
            ("host_ms", per.host_ms),
            ("first_loss", first),
        ],
    );
    Ok(())
}

/// The launch overhead: the tiny GPT's step with the bind group cache off and on, in
/// `rounds` alternating rounds of `steps` steps (each after two untimed steps), medians per
/// setting and their ratios. Host work is the step's time outside `queue.submit` and device
/// waits: what remains of a step when the GPU is infinitely fast.
pub fn launch_workload(ctx: &Ctx, rounds: usize, steps: usize) -> Result<()> {
    let shape = launch();
    let mut run = Run::new(&shape, ctx.device)?;
    // The pool settles into the same buffers step after step within a few dozen steps;
    // only then does every dispatch find its bind group cached.
    ctx.gpu.set_bind_group_cache(true);
    for _ in 0..30 {
        run.step()?;
    }
    // Per setting [off, on], one entry per round: step ms (median), host ms per step,
    // recording us per dispatch, new bind groups per step.
    let mut ms: [Vec<f64>; 2] = Default::default();
    let mut host: [Vec<f64>; 2] = Default::default();
    let mut rec: [Vec<f64>; 2] = Default::default();
    let mut made: [Vec<f64>; 2] = Default::default();
    let mut dispatches = 0.0;
    let mut submissions = 0.0;
    for _ in 0..rounds {
        for on in [false, true] {
            ctx.gpu.set_bind_group_cache(on);
            for _ in 0..2 {
                run.step()?;
            }
            let before = ctx.gpu.counters();
            let times = time_steps(&mut run, steps)?;
            let per = per_step(ctx, before, steps, times.iter().sum());
            let i = on as usize;
            ms[i].push(median(times));
            host[i].push(per.host_ms);
            rec[i].push(per.record_us);
            made[i].push(per.bind_groups);
            (dispatches, submissions) = (per.dispatches, per.submissions);
        }
    }
    ctx.gpu.set_bind_group_cache(true);
    let [ms_off, ms_on] = ms.map(median);
    let [host_off, host_on] = host.map(median);
    let [rec_off, rec_on] = rec.map(median);
    let [made_off, made_on] = made.map(median);
    let row = |ms: f64, host: f64, rec: f64, made: f64| {
        format!(
            "{ms:9.3} ms/step, {host:7.3} ms host work, {rec:6.2} us recording/dispatch, {made:4.0} new bind groups"
        )
    };
    println!(
        "launch_step (tiny GPT: d 32, 4 layers, context 16, batch 2): {dispatches:.0} dispatches, {submissions:.1} submits \
         per step; medians of {rounds} rounds x {steps} steps per setting\n  bind groups created per dispatch: {}\n  \
         bind groups reused:              {}\n  reuse: step {:.2}x, host work {:.2}x, recording {:.2}x faster \
         (host work is {:.0}% of the step here)",
        row(ms_off, host_off, rec_off, made_off),
        row(ms_on, host_on, rec_on, made_on),
        ms_off / ms_on,
        host_off / host_on,
        rec_off / rec_on,
        100.0 * host_on / ms_on,
    );
    json_line(
        ctx,
        shape.id,
        "ms",
        ms_on,
        &[
            ("dispatches", dispatches),
            ("submissions", submissions),
            ("ms_uncached", ms_off),
            ("host_ms", host_on),
            ("host_ms_uncached", host_off),
            ("record_us", rec_on),
            ("record_us_uncached", rec_off),
            ("bind_groups", made_on),
            ("step_speedup", ms_off / ms_on),
            ("host_speedup", host_off / host_on),
            ("record_speedup", rec_off / rec_on),
        ],
    );
    Ok(())
}

//! The matmul autotuner. Matmuls are grouped into shape classes (each of m, n, k rounded
//! up to a power of two, batched or not, which operands are transposed); the first matmul
//! of a class times every candidate tile on its own operands and keeps the fastest. Choices
//! are cached per adapter in memory and in a small text file, so a later run starts with
//! them. Tuning is on by default on real GPUs and off on software adapters (where timings
//! mean nothing); `PLIES_AUTOTUNE=0|1` overrides, `PLIES_AUTOTUNE_CACHE` names the file.

use crate::gpu::GpuBackend;
use crate::ops::MatmulConfig;
use crate::ops::MatmulProblem;
use plies_core::Result;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

/// A class of matmul shapes that share a tile choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShapeClass {
    /// log2 of m, n and k rounded up to a power of two.
    pub m: u8,
    pub n: u8,
    pub k: u8,
    pub batched: bool,
    pub a_t: bool,
    pub b_t: bool,
}

fn log2_up(v: usize) -> u8 {
    v.max(1).next_power_of_two().trailing_zeros() as u8
}

impl ShapeClass {
    pub(crate) fn of(p: &MatmulProblem) -> Self {
        ShapeClass { m: log2_up(p.m), n: log2_up(p.n), k: log2_up(p.k), batched: p.batch > 1, a_t: p.a_t, b_t: p.b_t }
    }

    fn key(&self) -> String {
        format!("{} {} {} {} {} {}", self.m, self.n, self.k, self.batched as u8, self.a_t as u8, self.b_t as u8)
    }

    fn parse(s: &str) -> Option<Self> {
        let v: Vec<u8> = s.split_whitespace().map(|t| t.parse().ok()).collect::<Option<_>>()?;
        let [m, n, k, b, at, bt] = v[..] else { return None };
        Some(ShapeClass { m, n, k, batched: b == 1, a_t: at == 1, b_t: bt == 1 })
    }
}

/// What one tuning measured: each candidate's time per matmul, and the choice.
#[derive(Clone, Debug)]
pub struct TuneReport {
    pub class: ShapeClass,
    pub timings: Vec<(MatmulConfig, f64)>,
    pub chosen: MatmulConfig,
}

pub(crate) struct Autotuner {
    enabled: bool,
    file: Option<PathBuf>,
    choices: Mutex<HashMap<ShapeClass, MatmulConfig>>,
    /// Serialises tunings: two threads tuning at once would time each other.
    tuning: Mutex<()>,
}

fn cache_file(info: &wgpu::AdapterInfo) -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PLIES_AUTOTUNE_CACHE") {
        return (!p.is_empty()).then(|| PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let id: String = format!("{}-{:?}-{}", info.name, info.backend, info.driver_info)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    Some(base.join("plies").join(format!("matmul-{id}.txt")))
}

fn config_key(c: &MatmulConfig) -> String {
    format!("{} {} {} {} {}", c.bm, c.bn, c.bk, c.tm, c.tn)
}

fn parse_config(s: &str) -> Option<MatmulConfig> {
    let v: Vec<u32> = s.split_whitespace().map(|t| t.parse().ok()).collect::<Option<_>>()?;
    let [bm, bn, bk, tm, tn] = v[..] else { return None };
    let c = MatmulConfig::new(bm, bn, bk, tm, tn);
    MatmulConfig::CANDIDATES.contains(&c).then_some(c)
}

impl Autotuner {
    pub(crate) fn new(info: &wgpu::AdapterInfo, is_software: bool) -> Self {
        let enabled = match std::env::var("PLIES_AUTOTUNE").as_deref() {
            Ok("0") => false,
            Ok("1") => true,
            _ => !is_software,
        };
        let file = cache_file(info);
        let mut choices = HashMap::new();
        if let Some(text) = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()) {
            // Lines "m n k batched a_t b_t = bm bn bk tm tn"; anything else is skipped.
            for line in text.lines() {
                if let Some((c, cfg)) = line.split_once('=') {
                    if let (Some(c), Some(cfg)) = (ShapeClass::parse(c), parse_config(cfg)) {
                        choices.insert(c, cfg);
                    }
                }
            }
        }
        Autotuner { enabled, file, choices: Mutex::new(choices), tuning: Mutex::new(()) }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    pub(crate) fn cached(&self, c: &ShapeClass) -> Option<MatmulConfig> {
        self.choices.lock().unwrap().get(c).copied()
    }

    fn remember(&self, c: ShapeClass, cfg: MatmulConfig) {
        let mut map = self.choices.lock().unwrap();
        map.insert(c, cfg);
        let Some(file) = &self.file else { return };
        let mut lines: Vec<String> = map.iter().map(|(c, cfg)| format!("{} = {}", c.key(), config_key(cfg))).collect();
        lines.sort();
        // A cache that cannot be written only costs a re-tune next time.
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(file, lines.join("\n") + "\n");
    }
}

impl GpuBackend {
    /// The tile for this problem: the cached choice of its class, a fresh tuning when
    /// tuning is on, else the heuristic.
    pub(crate) fn matmul_config(&self, p: &MatmulProblem, a: &wgpu::Buffer, b: &wgpu::Buffer) -> Result<MatmulConfig> {
        let class = ShapeClass::of(p);
        if let Some(c) = self.tuner.cached(&class) {
            return Ok(c);
        }
        if self.tuner.enabled() {
            return Ok(self.tune(p, a, b, 3)?.chosen);
        }
        Ok(MatmulConfig::heuristic(p.m, p.n, p.batch))
    }

    /// Time every candidate on this problem (`reps` runs each after a warm-up that also
    /// compiles it), remember the fastest for the class, and report.
    pub(crate) fn tune(
        &self,
        p: &MatmulProblem,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        reps: usize,
    ) -> Result<TuneReport> {
        let _one_at_a_time = self.tuner.tuning.lock().unwrap();
        let class = ShapeClass::of(p);
        let (scratch, class_bytes) = self.alloc("matmul autotune", p.batch * p.m * p.n, false)?;
        let result = (|| {
            self.wait_idle()?;
            let mut timings = Vec::new();
            for cfg in MatmulConfig::CANDIDATES.iter().filter(|c| c.fits(&self.limits)) {
                self.matmul_run(p, *cfg, a, b, &scratch)?;
                self.wait_idle()?;
                let t = Instant::now();
                for _ in 0..reps.max(1) {
                    self.matmul_run(p, *cfg, a, b, &scratch)?;
                }
                self.wait_idle()?;
                timings.push((*cfg, t.elapsed().as_secs_f64() / reps.max(1) as f64));
            }
            let chosen = timings
                .iter()
                .min_by(|x, y| x.1.total_cmp(&y.1))
                .map(|t| t.0)
                .unwrap_or_else(|| MatmulConfig::heuristic(p.m, p.n, p.batch));
            self.tuner.remember(class, chosen);
            Ok(TuneReport { class, timings, chosen })
        })();
        self.release(scratch, class_bytes);
        result
    }

    /// Tune the class of an `[m, k] x [k, n]` matmul now (on zero-filled operands),
    /// whatever `PLIES_AUTOTUNE` says, and return the measurements.
    pub fn tune_matmul(&self, m: usize, n: usize, k: usize) -> Result<TuneReport> {
        let a = self.fill(m * k, plies_core::DType::F32, 0.0)?;
        let b = self.fill(k * n, plies_core::DType::F32, 0.0)?;
        let la = plies_core::Layout::contiguous([m, k]);
        let lb = plies_core::Layout::contiguous([k, n]);
        let p = MatmulProblem::new(&la, &lb);
        self.tune(&p, a.buffer(), b.buffer(), 2)
    }

    /// The tile the next `[m, k] x [k, n]` matmul would use (cached, else heuristic).
    pub fn matmul_choice(&self, m: usize, n: usize, k: usize) -> MatmulConfig {
        let p = MatmulProblem::new(&plies_core::Layout::contiguous([m, k]), &plies_core::Layout::contiguous([k, n]));
        self.tuner.cached(&ShapeClass::of(&p)).unwrap_or_else(|| MatmulConfig::heuristic(m, n, 1))
    }
}

//! `Run`: the bookkeeping of a training loop in one place. It creates the output folder,
//! logs every step and evaluation to `metrics.jsonl`, drives the progress bar, saves training
//! states (`--save-every`) and resumes from them (`--resume`), and at the end writes
//! `loss.png` and returns the run's machine-readable result line.

use super::metrics::{fnv1a, FNV_OFFSET};
use super::{json_object, CommonArgs, LinePlot, MetricsLog, Progress, Value};
use crate::checkpoint::{Checkpoints, Resumed, RunMetrics, TrainState};
use crate::memory::MemoryReport;
use crate::module::Module;
use crate::optim::Optimizer;
use plies_autodiff::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Run {
    name: String,
    dir: PathBuf,
    log: MetricsLog,
    progress: Progress,
    train: Vec<(f64, f64)>,
    evals: Vec<(String, Vec<(f64, f64)>)>,
    total_steps: u64,
    save_every: Option<u64>,
    checkpoints: Checkpoints,
    /// (steps done, file) when this run goes on from a training state.
    resumed: Option<(u64, PathBuf)>,
    /// Time spent before the resume, so `elapsed_s` goes on from where it was.
    elapsed_before: Duration,
    /// The last step's memory report, printed by `finish`.
    memory: Option<MemoryReport>,
}

impl Run {
    /// Start a run named `name` of `total_steps` steps writing to `dir` (created if needed).
    /// Shows a progress bar on a terminal (see [`Progress::new`]).
    pub fn create(name: &str, dir: impl AsRef<Path>, total_steps: u64) -> Result<Run> {
        let dir = dir.as_ref().to_path_buf();
        let log = MetricsLog::create(dir.join("metrics.jsonl"))?;
        Ok(Run {
            name: name.to_string(),
            checkpoints: Checkpoints::new(&dir),
            dir,
            log,
            progress: Progress::new(total_steps),
            train: Vec::new(),
            evals: Vec::new(),
            total_steps,
            save_every: None,
            resumed: None,
            elapsed_before: Duration::ZERO,
            memory: None,
        })
    }

    /// The run the common flags describe, in `--out`. With `--resume DIR`: restore `model` and
    /// `opt` from DIR's newest loadable training state, go on with its metrics (the log is cut
    /// back to where the state was saved) and return that state, whose `step` is the first step
    /// to run. Without: start afresh, removing training states an earlier run left in `--out`,
    /// and return the state of step 0. Either way [`save_due`](Self::save_due) follows
    /// `--save-every`.
    pub fn start(
        name: &str,
        args: &CommonArgs,
        total_steps: u64,
        model: &dyn Module,
        opt: &mut dyn Optimizer,
    ) -> Result<(Run, TrainState)> {
        let dir = args.out_dir(name);
        let (mut run, state) = match &args.resume {
            None => {
                let removed = Checkpoints::clear(&dir)?;
                if removed > 0 {
                    eprintln!(
                        "plies: removed {removed} training state file(s) of an earlier run from {}",
                        dir.display()
                    );
                }
                (Run::create(name, &dir, total_steps)?, TrainState::default())
            }
            Some(from) => {
                let resumed = Checkpoints::load_latest(from, model, opt)?;
                if resumed.state.run != name {
                    return Err(Error::Format {
                        path: resumed.path.display().to_string(),
                        at: "training state".into(),
                        msg: format!("was saved by run `{}`, not `{name}`", resumed.state.run),
                    });
                }
                let run = Run::resume(name, &dir, total_steps, &resumed)?;
                (run, resumed.state)
            }
        };
        run.save_every = args.save_every;
        Ok((run, state))
    }

    /// Go on from a loaded training state, writing to `dir`: its metrics come back, and the
    /// log of the folder it was saved in (cut back to the save) is carried over, unless that
    /// log is gone or has been rewritten since (then a warning, and the log starts afresh).
    pub fn resume(name: &str, dir: impl AsRef<Path>, total_steps: u64, resumed: &Resumed) -> Result<Run> {
        let dir = dir.as_ref().to_path_buf();
        let m = &resumed.state.metrics;
        let from_dir = resumed.path.parent().unwrap_or(Path::new("."));
        let old_log = from_dir.join("metrics.jsonl");
        let prefix = match std::fs::read(&old_log) {
            Ok(mut bytes) if bytes.len() as u64 >= m.log_bytes => {
                bytes.truncate(m.log_bytes as usize);
                (fnv1a(FNV_OFFSET, &bytes) == m.log_hash).then_some(bytes)
            }
            _ => None,
        };
        let prefix = prefix.unwrap_or_else(|| {
            eprintln!(
                "plies: warning: {} is not the log the training state {} was saved with; starting a new log",
                old_log.display(),
                resumed.path.display()
            );
            Vec::new()
        });
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let checkpoints = if same(from_dir, &dir) {
            Checkpoints::new(&dir).after(&resumed.path)
        } else {
            Checkpoints::clear(&dir)?;
            Checkpoints::new(&dir)
        };
        Ok(Run {
            name: name.to_string(),
            log: MetricsLog::continued(dir.join("metrics.jsonl"), &prefix)?,
            dir,
            progress: Progress::new(total_steps),
            train: m.train.clone(),
            evals: m.evals.clone(),
            total_steps,
            save_every: None,
            checkpoints,
            resumed: Some((resumed.state.step, resumed.path.clone())),
            elapsed_before: Duration::from_secs_f64(m.elapsed_s.max(0.0)),
            memory: None,
        })
    }

    /// Save a training state every this many steps and after the last (`--save-every`).
    pub fn save_every(mut self, every: Option<u64>) -> Run {
        self.save_every = every;
        self
    }

    /// Whether a training state is due after `steps_done` steps: every `--save-every` steps
    /// and after the last step (never without `--save-every`).
    pub fn save_due(&self, steps_done: u64) -> bool {
        self.save_every.is_some_and(|n| n > 0 && (steps_done.is_multiple_of(n) || steps_done == self.total_steps))
    }

    /// What the run has recorded so far (a training state carries it).
    pub fn metrics(&self) -> RunMetrics {
        let (log_bytes, log_hash) = self.log.position();
        RunMetrics {
            train: self.train.clone(),
            evals: self.evals.clone(),
            log_bytes,
            log_hash,
            elapsed_s: self.elapsed().as_secs_f64(),
        }
    }

    /// Save `state` (this run's name and metrics filled in) with the model and optimizer as
    /// `state-<step>.safetensors` in the run's folder; returns the file.
    pub fn save_state(&mut self, mut state: TrainState, model: &dyn Module, opt: &dyn Optimizer) -> Result<PathBuf> {
        state.run = self.name.clone();
        state.metrics = self.metrics();
        self.checkpoints.save(&state, model, opt)
    }

    /// Time since the run started, counting the time before a resume.
    pub fn elapsed(&self) -> Duration {
        self.elapsed_before + self.progress.elapsed()
    }

    /// Replace the progress display (e.g. `Progress::quiet(steps)` in tests).
    pub fn with_progress(mut self, progress: Progress) -> Run {
        self.progress = progress;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Record the run's settings as a `{"event":"config",...}` line; a resumed run writes
    /// `{"event":"resume","step":steps_done,"from":file,...}` instead, after the log so far.
    pub fn config(&mut self, fields: &[(&str, Value)]) -> Result<()> {
        let mut all = match &self.resumed {
            None => vec![("event", Value::from("config")), ("name", Value::from(self.name.as_str()))],
            Some((step, from)) => vec![
                ("event", Value::from("resume")),
                ("name", Value::from(self.name.as_str())),
                ("step", Value::from(*step)),
                ("from", Value::from(from.display().to_string())),
            ],
        };
        all.extend(fields.iter().cloned());
        self.log.write(&all)
    }

    /// Training step `step` (0-based) ended with `loss` on `examples` examples: logs
    /// `{"step","loss","examples_per_sec","elapsed_s"}` and updates the progress bar.
    pub fn step(&mut self, step: u64, loss: f64, examples: u64) -> Result<()> {
        self.progress.step(step, loss, examples);
        self.train.push((step as f64, loss));
        self.log.write(&[
            ("step", step.into()),
            ("loss", loss.into()),
            ("examples_per_sec", round3(self.progress.recent_examples_per_sec()).into()),
            ("elapsed_s", round3(self.elapsed().as_secs_f64()).into()),
        ])
    }

    /// Evaluation metrics at `step`, logged as `{"step", "event":"eval", name: value, ...}` and
    /// printed above the progress bar. Metrics whose name contains `loss` join the loss plot;
    /// the others (accuracy, ...) get `metrics.png`.
    pub fn eval(&mut self, step: u64, metrics: &[(&str, f64)]) -> Result<()> {
        let mut fields = vec![("step", Value::from(step)), ("event", Value::from("eval"))];
        let mut line = format!("step {step}");
        for &(name, v) in metrics {
            fields.push((name, v.into()));
            line += &format!(" | {name} {v:.4}");
            match self.evals.iter_mut().find(|(n, _)| n == name) {
                Some((_, pts)) => pts.push((step as f64, v)),
                None => self.evals.push((name.to_string(), vec![(step as f64, v)])),
            }
        }
        self.progress.println(line);
        self.log.write(&fields)
    }

    /// The memory of step `step`: logs its totals as `{"step","event":"memory","param_bytes",
    /// "grad_bytes","optimizer_bytes","saved_bytes","live_bytes","peak_bytes"}`; `finish`
    /// prints the table of the last one and writes it to `memory.txt`.
    pub fn memory(&mut self, step: u64, report: &MemoryReport) -> Result<()> {
        let mut fields = vec![("step", Value::from(step)), ("event", Value::from("memory"))];
        fields.extend(report.fields());
        self.memory = Some(report.clone());
        self.log.write(&fields)
    }

    /// Any other record.
    pub fn log(&mut self, fields: &[(&str, Value)]) -> Result<()> {
        self.log.write(fields)
    }

    /// Print a line without breaking the progress bar.
    pub fn println(&self, line: impl AsRef<str>) {
        self.progress.println(line)
    }

    /// The loss curve: training loss and the evaluation losses, log-scaled when the losses
    /// span more than two decades. Past 1000 steps the training loss is drawn as means over
    /// windows of steps (named so in the legend), since a plot cannot show more points anyway.
    /// The raw train loss (window means past 1000 steps, so a long run stays drawable), a
    /// smoothed line over it (trailing mean of about a twentieth of the run), and the
    /// evaluations whose name contains `loss`.
    pub fn loss_plot(&self) -> LinePlot {
        let window = self.train.len().div_ceil(500);
        let (name, train) = if window > 1 && self.train.len() > 1000 {
            (format!("train (mean of {window} steps)"), window_means(&self.train, window))
        } else {
            ("train".to_string(), self.train.clone())
        };
        let span = (self.train.len() / 20).clamp(1, 500);
        let evals: Vec<_> = self.evals.iter().filter(|(n, _)| n.contains("loss")).collect();
        let drawn = || train.iter().chain(evals.iter().flat_map(|(_, p)| p.iter())).map(|p| p.1);
        let (lo, hi) =
            drawn().filter(|v| v.is_finite()).fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let log = lo > 0.0 && hi / lo > 100.0;
        let mut plot = LinePlot::new(format!("{}: loss", self.name)).log_y(log).series(name, train.clone());
        if span > 1 {
            plot = plot.series(format!("train (mean of last {span} steps)"), trailing_means(&self.train, span));
        }
        for (name, pts) in evals {
            plot = plot.series(name.clone(), pts.clone());
        }
        plot
    }

    /// The evaluations that are not losses (accuracy, ...), or `None` when there are none.
    pub fn metrics_plot(&self) -> Option<LinePlot> {
        let others: Vec<_> = self.evals.iter().filter(|(n, _)| !n.contains("loss")).collect();
        if others.is_empty() {
            return None;
        }
        let mut plot = LinePlot::new(format!("{}: evaluations", self.name));
        for (name, pts) in others {
            plot = plot.series(name.clone(), pts.clone());
        }
        Some(plot)
    }

    /// Finish: write `loss.png`, `metrics.png` when there are non-loss evaluations (and `memory.txt`, the table of the last [`memory`](Self::memory)
    /// report, also printed above the progress bar), log `{"event":"result",...}`, and return the result line
    /// `result: {"name":...,...}` for the example to print on stdout.
    pub fn finish(mut self, result: &[(&str, Value)]) -> Result<String> {
        if let Some(m) = &self.memory {
            let table = m.table();
            let path = self.dir.join("memory.txt");
            std::fs::write(&path, &table).map_err(|e| Error::io(&path, e))?;
            self.progress.println(table.trim_end());
        }
        self.progress.finish();
        self.loss_plot().write_png(self.dir.join("loss.png"))?;
        if let Some(p) = self.metrics_plot() {
            p.write_png(self.dir.join("metrics.png"))?;
        }
        let mut fields = vec![("event", Value::from("result")), ("name", Value::from(self.name.as_str()))];
        fields.extend(result.iter().cloned());
        fields.push(("elapsed_s", round3(self.elapsed().as_secs_f64()).into()));
        self.log.write(&fields)?;
        Ok(format!("result: {}", json_object(&fields[1..])))
    }
}

/// Means of x and of the finite y over consecutive windows of `window` points.
fn window_means(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    points
        .chunks(window)
        .filter_map(|c| {
            let ys: Vec<f64> = c.iter().map(|p| p.1).filter(|y| y.is_finite()).collect();
            let x = c.iter().map(|p| p.0).sum::<f64>() / c.len() as f64;
            (!ys.is_empty()).then(|| (x, ys.iter().sum::<f64>() / ys.len() as f64))
        })
        .collect()
}

/// At each point, the mean of the finite y over the last `span` points (fewer at the start).
fn trailing_means(points: &[(f64, f64)], span: usize) -> Vec<(f64, f64)> {
    let (mut sum, mut count) = (0.0, 0usize);
    let mut out = Vec::with_capacity(points.len());
    for (i, &(x, y)) in points.iter().enumerate() {
        if y.is_finite() {
            sum += y;
            count += 1;
        }
        if i >= span {
            let old = points[i - span].1;
            if old.is_finite() {
                sum -= old;
                count -= 1;
            }
        }
        if count > 0 {
            out.push((x, sum / count as f64));
        }
    }
    out
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::trailing_means;

    #[test]
    fn trailing_means_skip_non_finite_values_and_drop_old_ones() {
        let pts = [(0.0, 1.0), (1.0, 3.0), (2.0, f64::NAN), (3.0, 5.0), (4.0, 7.0)];
        let got = trailing_means(&pts, 2);
        assert_eq!(got, vec![(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 5.0), (4.0, 6.0)]);
    }
}

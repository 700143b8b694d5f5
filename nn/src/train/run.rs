//! `Run`: the bookkeeping of a training loop in one place. It creates the output folder,
//! logs every step and evaluation to `metrics.jsonl`, drives the progress bar, and at the end
//! writes `loss.png` and returns the run's machine-readable result line.

use super::{json_object, LinePlot, MetricsLog, Progress, Value};
use plies_autodiff::Result;
use std::path::{Path, PathBuf};

pub struct Run {
    name: String,
    dir: PathBuf,
    log: MetricsLog,
    progress: Progress,
    train: Vec<(f64, f64)>,
    evals: Vec<(String, Vec<(f64, f64)>)>,
}

impl Run {
    /// Start a run named `name` of `total_steps` steps writing to `dir` (created if needed).
    /// Shows a progress bar on a terminal (see [`Progress::new`]).
    pub fn create(name: &str, dir: impl AsRef<Path>, total_steps: u64) -> Result<Run> {
        let dir = dir.as_ref().to_path_buf();
        let log = MetricsLog::create(dir.join("metrics.jsonl"))?;
        Ok(Run {
            name: name.to_string(),
            dir,
            log,
            progress: Progress::new(total_steps),
            train: Vec::new(),
            evals: Vec::new(),
        })
    }

    /// Replace the progress display (e.g. `Progress::quiet(steps)` in tests).
    pub fn with_progress(mut self, progress: Progress) -> Run {
        self.progress = progress;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Record the run's settings as a `{"event":"config",...}` line.
    pub fn config(&mut self, fields: &[(&str, Value)]) -> Result<()> {
        let mut all = vec![("event", Value::from("config")), ("name", Value::from(self.name.as_str()))];
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
            ("elapsed_s", round3(self.progress.elapsed().as_secs_f64()).into()),
        ])
    }

    /// Evaluation metrics at `step`, logged as `{"step", "event":"eval", name: value, ...}` and
    /// printed above the progress bar. Metrics whose name contains `loss` join the loss plot.
    pub fn eval(&mut self, step: u64, metrics: &[(&str, f64)]) -> Result<()> {
        let mut fields = vec![("step", Value::from(step)), ("event", Value::from("eval"))];
        let mut line = format!("step {step}");
        for &(name, v) in metrics {
            fields.push((name, v.into()));
            line += &format!(" | {name} {v:.4}");
            if name.contains("loss") {
                match self.evals.iter_mut().find(|(n, _)| n == name) {
                    Some((_, pts)) => pts.push((step as f64, v)),
                    None => self.evals.push((name.to_string(), vec![(step as f64, v)])),
                }
            }
        }
        self.progress.println(line);
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
    pub fn loss_plot(&self) -> LinePlot {
        let window = self.train.len().div_ceil(500);
        let (name, train) = if window > 1 && self.train.len() > 1000 {
            (format!("train (mean of {window} steps)"), window_means(&self.train, window))
        } else {
            ("train".to_string(), self.train.clone())
        };
        let drawn = || train.iter().chain(self.evals.iter().flat_map(|(_, p)| p.iter())).map(|p| p.1);
        let (lo, hi) =
            drawn().filter(|v| v.is_finite()).fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let log = lo > 0.0 && hi / lo > 100.0;
        let mut plot = LinePlot::new(format!("{}: loss", self.name)).log_y(log).series(name, train.clone());
        for (name, pts) in &self.evals {
            plot = plot.series(name.clone(), pts.clone());
        }
        plot
    }

    /// Finish: write `loss.png`, log `{"event":"result",...}`, and return the result line
    /// `result: {"name":...,...}` for the example to print on stdout.
    pub fn finish(mut self, result: &[(&str, Value)]) -> Result<String> {
        self.progress.finish();
        self.loss_plot().write_png(self.dir.join("loss.png"))?;
        let mut fields = vec![("event", Value::from("result")), ("name", Value::from(self.name.as_str()))];
        fields.extend(result.iter().cloned());
        fields.push(("elapsed_s", round3(self.progress.elapsed().as_secs_f64()).into()));
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

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

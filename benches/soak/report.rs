//! The soak's outputs: a verdict line per workload, soak.md (summary and every sample),
//! soak.jsonl (one sample a line) and a PNG per workload.

use crate::{Outcome, Sample, REFERENCE, TOLERANCE};
use plies::autodiff::{Error, Result};
use plies::nn::train::LinePlot;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn pct(x: f64) -> String {
    format!("{:.3}%", x * 100.0)
}

/// A signed size: bytes below 1 KiB, else KiB.
fn delta(bytes: i64) -> String {
    if bytes.abs() < 1024 {
        format!("{bytes:+} B")
    } else {
        format!("{:+.1} KiB", bytes as f64 / 1024.0)
    }
}

fn word(passed: bool) -> &'static str {
    if passed {
        "PASS"
    } else {
        "FAIL"
    }
}

pub fn verdict(o: &Outcome, seconds: f64) -> String {
    let steps = o.samples.last().map_or(0, |s| s.step);
    let mut line = format!("{}: {} ({}, {steps} steps, {seconds:.0} s)", o.id, word(o.passed()), o.about);
    for c in &o.checks {
        let _ = write!(
            line,
            "; {} {:.3} MiB at step {REFERENCE}, max deviation {} ({}) at step {}",
            c.what,
            mib(c.reference),
            pct(c.max_dev),
            delta(c.delta),
            c.at_step
        );
    }
    line
}

/// The value of the quantity named `what` (as in `Check::what`) in `s`.
fn quantity(what: &str, s: &Sample) -> u64 {
    match what {
        "rss" => s.rss,
        "gpu live" => s.gpu_live.unwrap_or(0),
        _ => s.cpu_live,
    }
}

fn at(o: &Outcome, step: usize) -> Option<&Sample> {
    o.samples.iter().find(|s| s.step == step)
}

fn table(outcomes: &[Outcome]) -> String {
    let mut md = format!(
        "# Soak\n\nFrom step {REFERENCE} on, each quantity must stay within {:.0}% of its value at step \
         {REFERENCE}. Sizes in MiB.\n\n",
        TOLERANCE * 100.0
    );
    md.push_str(
        "| workload | quantity | step 500 | step 1000 | end (step) | max deviation (bytes, step) | verdict |\n",
    );
    md.push_str("|---|---|---|---|---|---|---|\n");
    let cell = |s: Option<&Sample>, what: &str| s.map_or("-".to_string(), |s| format!("{:.3}", mib(quantity(what, s))));
    for o in outcomes {
        let end = o.samples.last();
        for c in &o.checks {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} ({}) | {} ({}, {}) | {} |",
                o.id,
                c.what,
                cell(at(o, REFERENCE), c.what),
                cell(at(o, 1000), c.what),
                cell(end, c.what),
                end.map_or(0, |s| s.step),
                pct(c.max_dev),
                delta(c.delta),
                c.at_step,
                word(c.passed())
            );
        }
    }
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |b| format!("{:.3}", mib(b)));
    for o in outcomes {
        let _ = write!(
            md,
            "\n## {}: {}\n\n| step | RSS | cpu live | gpu live | gpu cached | loss | ms/step |\n|---|---|---|---|---|---|---|\n",
            o.id, o.about
        );
        for s in &o.samples {
            let _ = writeln!(
                md,
                "| {} | {:.3} | {:.3} | {} | {} | {} | {} |",
                s.step,
                mib(s.rss),
                mib(s.cpu_live),
                opt(s.gpu_live),
                opt(s.gpu_cached),
                s.loss.map_or("-".to_string(), |l| format!("{l:.4}")),
                s.ms_per_step.map_or("-".to_string(), |m| format!("{m:.3}")),
            );
        }
    }
    md
}

fn jsonl(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        for s in &o.samples {
            let line = serde_json::json!({
                "workload": o.id,
                "step": s.step,
                "rss_bytes": s.rss,
                "cpu_live_bytes": s.cpu_live,
                "gpu_live_bytes": s.gpu_live,
                "gpu_cached_bytes": s.gpu_cached,
                "loss": s.loss,
                "ms_per_step": s.ms_per_step,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
    }
    out
}

/// Each checked quantity divided by its value at step `REFERENCE`, with the allowed band.
/// Step 0 (before any step) is left out: it would stretch the axis far beyond the band.
fn plot(o: &Outcome) -> LinePlot {
    let last = o.samples.last().map_or(0, |s| s.step) as f64;
    let mut p = LinePlot::new(format!("soak {}: RSS, live bytes", o.id))
        .y_label(format!("value / value at step {REFERENCE}"))
        .size(900, 540);
    for c in &o.checks {
        let points = o
            .samples
            .iter()
            .filter(|s| s.step > 0 && c.reference > 0)
            .map(|s| (s.step as f64, quantity(c.what, s) as f64 / c.reference as f64));
        p = p.series(c.what, points);
    }
    let band = |f: f64| [(REFERENCE as f64, f), (last, f)];
    p.series(format!("+{:.0}%", TOLERANCE * 100.0), band(1.0 + TOLERANCE))
        .series(format!("-{:.0}%", TOLERANCE * 100.0), band(1.0 - TOLERANCE))
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Write everything into `dir`; returns the paths written.
pub fn write(dir: &Path, outcomes: &[Outcome]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (md, jl) = (dir.join("soak.md"), dir.join("soak.jsonl"));
    write_file(&md, &table(outcomes))?;
    write_file(&jl, &jsonl(outcomes))?;
    let mut written = vec![md, jl];
    for o in outcomes {
        let png = dir.join(format!("{}.png", o.id));
        plot(o).write_png(&png)?;
        written.push(png);
    }
    Ok(written)
}

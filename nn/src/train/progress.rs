//! A progress bar for training loops: step, loss and examples per second.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar on a terminal, nothing otherwise; `PLIES_PROGRESS=bar|lines|off` overrides.
    Auto,
    /// A bar redrawn in place on stderr.
    Bar,
    /// A plain line on stderr every tenth of the run (for logs and CI).
    Lines,
    /// Nothing.
    Quiet,
}

enum Display {
    Bar(ProgressBar),
    Lines { next: u64 },
    Quiet,
}

/// Shows how a run of `total` steps goes. Rates are measured over the last half second or more.
pub struct Progress {
    display: Display,
    total: u64,
    start: Instant,
    examples: u64,
    window: (Instant, u64),
    rate: f64,
}

impl Progress {
    /// A bar on a terminal, nothing when stderr is not one (see [`ProgressMode::Auto`]).
    pub fn new(total: u64) -> Progress {
        Progress::with_mode(total, ProgressMode::Auto)
    }

    pub fn quiet(total: u64) -> Progress {
        Progress::with_mode(total, ProgressMode::Quiet)
    }

    pub fn with_mode(total: u64, mode: ProgressMode) -> Progress {
        let mode = match mode {
            ProgressMode::Auto => match std::env::var("PLIES_PROGRESS").as_deref() {
                Ok("bar") => ProgressMode::Bar,
                Ok("lines") => ProgressMode::Lines,
                Ok("off") | Ok("quiet") => ProgressMode::Quiet,
                _ if std::io::stderr().is_terminal() => ProgressMode::Bar,
                _ => ProgressMode::Quiet,
            },
            m => m,
        };
        let display = match mode {
            ProgressMode::Bar => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(10));
                let style = ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} {msg} (eta {eta})",
                )
                .expect("a valid progress template")
                .progress_chars("=> ");
                bar.set_style(style);
                Display::Bar(bar)
            }
            ProgressMode::Lines => Display::Lines { next: 0 },
            _ => Display::Quiet,
        };
        let now = Instant::now();
        Progress { display, total, start: now, examples: 0, window: (now, 0), rate: 0.0 }
    }

    /// Step `step` (0-based) finished with `loss` after processing `examples` examples.
    pub fn step(&mut self, step: u64, loss: f64, examples: u64) {
        self.examples += examples;
        let now = Instant::now();
        let span = now.duration_since(self.window.0);
        if span >= Duration::from_millis(500) || self.rate == 0.0 {
            let secs = span.as_secs_f64().max(1e-9);
            self.rate = (self.examples - self.window.1) as f64 / secs;
            self.window = (now, self.examples);
        }
        let done = step + 1;
        let msg = format!("loss {loss:.4} | {} ex/s", human(self.rate));
        match &mut self.display {
            Display::Bar(bar) => {
                bar.set_position(done);
                bar.set_message(msg);
            }
            Display::Lines { next } => {
                if done >= *next || done == self.total {
                    eprintln!("step {done}/{} | {msg} | {:.1}s", self.total, self.start.elapsed().as_secs_f64());
                    *next = done + (self.total / 10).max(1);
                }
            }
            Display::Quiet => {}
        }
    }

    /// Print a line without breaking the bar (or as is when there is no bar).
    pub fn println(&self, line: impl AsRef<str>) {
        match &self.display {
            Display::Bar(bar) => bar.println(line.as_ref()),
            Display::Lines { .. } => eprintln!("{}", line.as_ref()),
            Display::Quiet => {}
        }
    }

    /// Examples per second over the whole run so far.
    pub fn examples_per_sec(&self) -> f64 {
        self.examples as f64 / self.start.elapsed().as_secs_f64().max(1e-9)
    }

    /// Examples per second over the last measuring window.
    pub fn recent_examples_per_sec(&self) -> f64 {
        self.rate
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Leave the bar's last state on screen.
    pub fn finish(&mut self) {
        if let Display::Bar(bar) = &self.display {
            bar.finish();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Display::Bar(bar) = &self.display {
            if bar.position() == 0 {
                // Never shown (e.g. replaced by `Run::with_progress`): indicatif would draw an
                // unfinished bar once when dropped, so hide it first.
                bar.set_draw_target(ProgressDrawTarget::hidden());
            } else if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}

/// 1234 -> "1234", 123456 -> "123.5k", 12345678 -> "12.35M".
fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

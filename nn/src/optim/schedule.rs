//! Learning-rate schedules as a factor of each group's base rate:
//! `opt.set_lr_factor(schedule.factor(step))` before `opt.step()`.

use std::f64::consts::PI;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// Linear ramp over the first `warmup` steps (step 0 gets 1/warmup), then constant.
    LinearWarmup {
        warmup: usize,
    },
    /// Linear warmup, then cosine decay from 1 to `min_factor` at step `total`, then
    /// constant at `min_factor`.
    WarmupCosine {
        warmup: usize,
        total: usize,
        min_factor: f64,
    },
}

impl Schedule {
    /// The factor for 0-based step `step`.
    pub fn factor(&self, step: usize) -> f64 {
        let warm = |w: usize| if step < w { (step + 1) as f64 / w as f64 } else { 1.0 };
        match *self {
            Schedule::Constant => 1.0,
            Schedule::LinearWarmup { warmup } => warm(warmup),
            Schedule::WarmupCosine { warmup, total, min_factor } => {
                if step < warmup {
                    return warm(warmup);
                }
                let span = total.saturating_sub(warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                min_factor + (1.0 - min_factor) * 0.5 * (1.0 + (PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Schedule;

    #[test]
    fn warmup_then_cosine() {
        let s = Schedule::WarmupCosine { warmup: 4, total: 14, min_factor: 0.1 };
        assert_eq!(s.factor(0), 0.25);
        assert_eq!(s.factor(3), 1.0);
        assert_eq!(s.factor(4), 1.0);
        assert!((s.factor(9) - 0.55).abs() < 1e-12, "halfway is the midpoint");
        assert!((s.factor(14) - 0.1).abs() < 1e-12);
        assert!((s.factor(100) - 0.1).abs() < 1e-12);
        assert_eq!(Schedule::LinearWarmup { warmup: 2 }.factor(0), 0.5);
        assert_eq!(Schedule::Constant.factor(7), 1.0);
    }
}

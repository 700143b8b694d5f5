//! Random fills from the counter-based generator: element i depends only on (key, i), and
//! the kernels reproduce the CPU's numbers (see random.wgsl).

use crate::gpu::GpuBackend;
use crate::kernels::{Family, Kernel};
use crate::params::Params;
use crate::storage::GpuStorage;
use plies_core::{DType, Distribution, Error, Result};

/// An f64 as [sign, mantissa low, mantissa high, exponent] with value = mantissa * 2^exponent.
fn float_words(x: f64) -> [u32; 4] {
    let b = x.to_bits();
    let neg = (b >> 63) as u32;
    let field = ((b >> 52) & 0x7ff) as i32;
    let frac = b & ((1u64 << 52) - 1);
    let (m, e) = if field == 0 { (frac, -1074) } else { (frac | 1 << 52, field - 1075) };
    [neg, m as u32, (m >> 32) as u32, e as u32]
}

/// The integer threshold t with `2 * (bits >> 8) + 1 < t` exactly when the CPU's
/// `unit < p`, where unit = (2 * (bits >> 8) + 1) / 2^25.
fn bernoulli_threshold(p: f64) -> u32 {
    let t = (p * 33_554_432.0).ceil();
    if t.is_nan() || t <= 0.0 {
        0
    } else {
        t.min(33_554_433.0) as u32
    }
}

impl GpuBackend {
    pub(crate) fn random_fill(&self, len: usize, dtype: DType, dist: Distribution, key: u64) -> Result<GpuStorage> {
        if dtype != DType::F32 {
            return Err(Error::UnsupportedDType { op: "random", dtype, device: self.plies_device() });
        }
        if len > u32::MAX as usize / 2 {
            return Err(Error::TooLarge {
                op: "random",
                bytes: len as u64,
                limit: u32::MAX as u64 / 2,
                what: "element count of one draw",
            });
        }
        let out = self.output("random", len, dtype)?;
        let p = Params::new(len).extra(0, key as u32).extra(1, (key >> 32) as u32);
        let (entry, p) = match dist {
            Distribution::Uniform { lo, hi } => {
                if !lo.is_finite() || !hi.is_finite() || !(hi - lo).is_finite() {
                    return Err(Error::invalid("random", format!("uniform bounds must be finite, got [{lo}, {hi})")));
                }
                ("uniform_f32", p.push(float_words(lo)).push(float_words(hi - lo)))
            }
            Distribution::Bernoulli { p: prob } => ("bernoulli", p.extra(2, bernoulli_threshold(prob))),
            Distribution::Normal { mean, std } => ("normal", p.scalar(0, mean as f32).scalar(1, std as f32)),
        };
        self.run(&Kernel::new(Family::Random, entry), &p, &[(1, out.buffer())], [self.groups(len), 1, 1])?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_words_rebuild_the_value() {
        for x in [1.0, -0.1, 3.5e-300, 5e-324, 123456.789, 0.0] {
            let w = float_words(x);
            let m = (w[1] as u64 | (w[2] as u64) << 32) as f64;
            let v = m * 2f64.powi(w[3] as i32);
            assert_eq!(if w[0] == 1 { -v } else { v }, x);
        }
    }

    #[test]
    fn bernoulli_threshold_matches_the_cpu_comparison() {
        for p in [0.0, 1e-9, 0.1, 0.5, 0.3333333333, 0.9, 1.0, 1.5, -0.2, f64::NAN] {
            let t = bernoulli_threshold(p);
            for k in [0u32, 1, 5_000_000, 8_388_608, 16_777_215] {
                let unit = (k as f64 + 0.5) / 16_777_216.0;
                assert_eq!(2 * k + 1 < t, unit < p, "p {p} k {k}");
            }
        }
    }
}

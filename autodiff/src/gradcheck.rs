//! Finite-difference gradient checking, public so users can check their own functions.
//!
//! The function's output is projected onto fixed random weights, `L = sum(f(x) * w)`, so
//! one backward pass checks the whole Jacobian-vector product; each input element is then
//! perturbed by `±eps` and `(L+ - L-) / 2 eps` compared with the analytic gradient.
//! Everything runs in f64 on the CPU.

use crate::{no_grad, Tensor};
use plies_core::rng::Rng;
use plies_core::{Array, DType, Device, Distribution, Error, Result};

/// Tolerances and step of a gradient check.
#[derive(Clone, Copy, Debug)]
pub struct GradCheck {
    pub eps: f64,
    pub atol: f64,
    pub rtol: f64,
    /// Seed of the projection weights.
    pub seed: u64,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck { eps: 1e-6, atol: 1e-6, rtol: 1e-4, seed: 0 }
    }
}

/// Check `f`'s gradients at `inputs` with default tolerances. Float inputs are made f64
/// parameters (strided layouts are kept); i32 inputs are passed as constants.
///
/// ```
/// use plies_autodiff::{check_gradients, Array, Device};
///
/// let x = Array::from_vec(vec![0.3f64, -1.2, 2.0], [3], Device::Cpu)?;
/// check_gradients(|t| t[0].try_tanh()?.try_sum_all(), &[x])?;
/// # Ok::<(), plies_autodiff::Error>(())
/// ```
pub fn check_gradients(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Array]) -> Result<()> {
    GradCheck::default().check(f, inputs)
}

impl GradCheck {
    pub fn check(&self, f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Array]) -> Result<()> {
        let prepared: Vec<Array> = inputs
            .iter()
            .map(|a| {
                let a = a.to_device(Device::Cpu)?;
                if a.dtype().is_float() && a.dtype() != DType::F64 {
                    a.to_dtype(DType::F64)
                } else {
                    Ok(a)
                }
            })
            .collect::<Result<_>>()?;
        let params: Vec<Tensor> = prepared
            .iter()
            .map(|a| if a.dtype().is_float() { Tensor::param(a.clone()) } else { Tensor::new(a.clone()) })
            .collect();
        let y = f(&params)?;
        let w = Array::random(
            y.shape(),
            Distribution::Normal { mean: 0.0, std: 1.0 },
            Rng::new(self.seed).next_key(),
            DType::F64,
            Device::Cpu,
        )?;
        let wt = Tensor::new(w.clone());
        if !y.requires_grad() {
            return Err(Error::NoGradient {
                op: "gradcheck",
                msg: "the output does not depend on any float input".into(),
            });
        }
        y.try_mul(&wt)?.try_sum_all()?.backward()?;

        let loss_at = |values: &[Array]| -> Result<f64> {
            no_grad(|| {
                let ts: Vec<Tensor> = values.iter().map(|a| Tensor::new(a.clone())).collect();
                f(&ts)?.value().mul(&w)?.sum(plies_core::AllAxes, false)?.to_scalar::<f64>()
            })
        };
        let mut failures = Vec::new();
        let mut worst = 0.0f64;
        for (i, p) in params.iter().enumerate() {
            if !prepared[i].dtype().is_float() {
                continue;
            }
            let analytic = match p.grad() {
                Some(g) => g.to_vec::<f64>()?,
                None => vec![0.0; p.elem_count()],
            };
            let base = prepared[i].to_vec::<f64>()?;
            let shape = prepared[i].shape().clone();
            let mut values = prepared.clone();
            for j in 0..base.len() {
                let mut v = base.clone();
                v[j] = base[j] + self.eps;
                values[i] = Array::from_vec(v.clone(), shape.clone(), Device::Cpu)?;
                let lp = loss_at(&values)?;
                v[j] = base[j] - self.eps;
                values[i] = Array::from_vec(v, shape.clone(), Device::Cpu)?;
                let lm = loss_at(&values)?;
                let numeric = (lp - lm) / (2.0 * self.eps);
                let err = (analytic[j] - numeric).abs();
                let allowed = self.atol + self.rtol * numeric.abs().max(analytic[j].abs());
                worst = worst.max(err / allowed);
                if err > allowed || !analytic[j].is_finite() {
                    failures
                        .push(format!("  input {i} element {j}: analytic {:.9e} numeric {:.9e}", analytic[j], numeric));
                }
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        let shown: Vec<String> = failures.iter().take(8).cloned().collect();
        Err(Error::msg(format!(
            "gradient check failed at {} element(s) (worst error {worst:.2}x the tolerance):\n{}",
            failures.len(),
            shown.join("\n")
        )))
    }
}

//! Finite-difference gradient checks of whole modules: the parameters a module owns are
//! perturbed in place (`set_value`), so any layer can be checked without rebuilding it.
//! Same method as `plies_autodiff::check_gradients`: the output is projected on fixed
//! random weights, `L = sum(f(x) * w)`, one backward gives the analytic gradient, and each
//! element's `(L(+eps) - L(-eps)) / 2 eps` is compared with it. Everything runs in f64.

use crate::module::Module;
use plies_autodiff::rng::Rng;
use plies_autodiff::{no_grad, AllAxes, Array, DType, Device, Distribution, Error, GradCheck, Result, Tensor};

/// Check the gradients of `f(inputs)` with respect to every parameter of `module` that
/// requires a gradient and every float input. The module must hold f64 parameters and be
/// deterministic (eval mode or no dropout). At most `max_elems` elements per tensor are
/// checked (spread evenly), to keep checks of larger modules fast.
pub fn check_module(
    module: &dyn Module,
    inputs: &[Array],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    cfg: GradCheck,
    max_elems: usize,
) -> Result<()> {
    let params = module.named_parameters();
    for p in &params {
        if p.tensor.dtype() != DType::F64 {
            return Err(Error::invalid(
                "check_module",
                format!("parameter `{}` is {}, not f64", p.name, p.tensor.dtype()),
            ));
        }
        p.tensor.zero_grad();
    }
    let inputs: Vec<Array> = inputs
        .iter()
        .map(|a| if a.dtype().is_float() { a.to_dtype(DType::F64) } else { Ok(a.clone()) })
        .collect::<Result<_>>()?;
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|a| if a.dtype().is_float() { Tensor::param(a.clone()) } else { Tensor::new(a.clone()) })
        .collect();
    let y = f(&leaves)?;
    let key = Rng::new(cfg.seed).next_key();
    let w = Array::random(y.shape(), Distribution::Normal { mean: 0.0, std: 1.0 }, key, DType::F64, Device::Cpu)?;
    y.try_mul(&Tensor::new(w.clone()))?.try_sum_all()?.backward()?;

    let loss = |xs: &[Array]| -> Result<f64> {
        no_grad(|| {
            let ts: Vec<Tensor> = xs.iter().map(|a| Tensor::new(a.clone())).collect();
            f(&ts)?.value().mul(&w)?.sum(AllAxes, false)?.to_scalar::<f64>()
        })
    };
    let mut failures = Vec::new();
    let mut compare = |what: &str, j: usize, analytic: f64, numeric: f64| {
        let err = (analytic - numeric).abs();
        let allowed = cfg.atol + cfg.rtol * numeric.abs().max(analytic.abs());
        if err > allowed || !analytic.is_finite() {
            failures.push(format!("  {what} element {j}: analytic {analytic:.9e} numeric {numeric:.9e}"));
        }
    };
    let picks = |n: usize| -> Vec<usize> {
        let step = n.div_ceil(max_elems.max(1)).max(1);
        (0..n).step_by(step).collect()
    };

    for p in params.iter().filter(|p| p.tensor.requires_grad()) {
        let base = p.tensor.value();
        let analytic = match p.tensor.grad() {
            Some(g) => g.to_vec::<f64>()?,
            None => vec![0.0; base.elem_count()],
        };
        let values = base.to_vec::<f64>()?;
        for j in picks(values.len()) {
            let at = |delta: f64| -> Result<f64> {
                let mut v = values.clone();
                v[j] += delta;
                p.tensor.set_value(Array::from_vec(v, base.shape().clone(), Device::Cpu)?)?;
                loss(&inputs)
            };
            let (lp, lm) = (at(cfg.eps)?, at(-cfg.eps)?);
            p.tensor.set_value(base.clone())?;
            compare(&format!("parameter `{}`", p.name), j, analytic[j], (lp - lm) / (2.0 * cfg.eps));
        }
    }
    for (i, leaf) in leaves.iter().enumerate() {
        if !inputs[i].dtype().is_float() {
            continue;
        }
        let analytic = match leaf.grad() {
            Some(g) => g.to_vec::<f64>()?,
            None => vec![0.0; leaf.elem_count()],
        };
        let values = inputs[i].to_vec::<f64>()?;
        for j in picks(values.len()) {
            let mut xs = inputs.clone();
            let mut at = |delta: f64| -> Result<f64> {
                let mut v = values.clone();
                v[j] += delta;
                xs[i] = Array::from_vec(v, inputs[i].shape().clone(), Device::Cpu)?;
                loss(&xs)
            };
            let (lp, lm) = (at(cfg.eps)?, at(-cfg.eps)?);
            compare(&format!("input {i}"), j, analytic[j], (lp - lm) / (2.0 * cfg.eps));
        }
    }
    for p in &params {
        p.tensor.zero_grad();
    }
    if failures.is_empty() {
        return Ok(());
    }
    let n = failures.len();
    failures.truncate(8);
    Err(Error::msg(format!("module gradient check failed at {n} element(s):\n{}", failures.join("\n"))))
}

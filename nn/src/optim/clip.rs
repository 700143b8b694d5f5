//! Gradient clipping by global norm (PyTorch's `clip_grad_norm_`).

use crate::module::NamedParam;
use plies_autodiff::{AllAxes, Array, DType, Result};

/// Scale the gradients of `params` so their joint L2 norm is at most `max_norm`; returns
/// the norm before clipping as a rank-0 array (None when no parameter has a gradient).
/// Stays on the device (no readback): the scale is `min(1, max_norm / (norm + 1e-6))`, applied to every gradient.
///
/// The norm is summed in the widest gradient dtype (f32 for f32 models, as PyTorch does):
/// widening further would break on devices without f64, such as the GPU.
pub fn clip_grad_norm(params: &[NamedParam], max_norm: f64) -> Result<Option<Array>> {
    let grads: Vec<(&NamedParam, Array)> = params.iter().filter_map(|p| p.tensor.grad().map(|g| (p, g))).collect();
    if grads.is_empty() {
        return Ok(None);
    }
    let acc = if grads.iter().any(|(_, g)| g.dtype() == DType::F64) { DType::F64 } else { DType::F32 };
    let mut total: Option<Array> = None;
    for (_, g) in &grads {
        let s = g.sqr()?.sum(AllAxes, false)?.to_dtype(acc)?;
        total = Some(match total {
            None => s,
            Some(t) => t.add(&s)?,
        });
    }
    let norm = total.expect("at least one gradient").sqrt()?;
    let scale = norm.add_scalar(1e-6)?.recip()?.mul_scalar(max_norm)?.clamp(f64::NEG_INFINITY, 1.0)?;
    for (p, g) in &grads {
        p.tensor.set_grad(Some(g.mul(&scale.to_dtype(g.dtype())?)?));
    }
    Ok(Some(norm))
}

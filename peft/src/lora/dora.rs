//! DoRA (Liu et al. 2024) as PEFT computes it: the base weight's direction re-scaled row by
//! row to a learned magnitude, with the row norm treated as a constant in backward.

use plies_autodiff::{Array, Result, Tensor};
use plies_nn::layers::Linear;

/// Row norms `||W_i||_2` of an `[out, in]` array -> `[out]`.
pub fn row_norms(w: &Array) -> Result<Array> {
    w.sqr()?.sum([1], false)?.sqrt()
}

/// PEFT's `DoraLinearLayer.forward` plus the base output:
/// `W0 x + b + (m/n - 1) W0 xd + (m/n) s B A xd`, where `n = ||W0 + s B A||_row` is detached
/// and `xd` is the dropped-out input (`x` itself when dropout is off, so W0 x is computed once).
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    layer: &Linear,
    x: &Tensor,
    xd: &Tensor,
    dropped: bool,
    lora: &Tensor,
    m: &Tensor,
    a: &Tensor,
    b: &Tensor,
    s: f64,
) -> Result<Tensor> {
    let w = layer.weight.value();
    let norms = row_norms(&w.add(&b.value().matmul(&a.value())?.mul_scalar(s)?)?)?;
    let scale = m.try_div(&Tensor::new(norms))?;
    let w0x = layer.try_base(x, false)?;
    let w0xd = if dropped { layer.try_base(xd, false)? } else { w0x.clone() };
    let base = match &layer.bias {
        Some(bias) => w0x.try_add(bias)?,
        None => w0x,
    };
    let dora = w0xd.try_mul(&scale.try_add_scalar(-1.0)?)?.try_add(&lora.try_mul(&scale)?.try_mul_scalar(s)?)?;
    base.try_add(&dora)
}

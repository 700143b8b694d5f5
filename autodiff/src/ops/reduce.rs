//! Reductions over any axes, with or without `keepdim`.

use super::infallible;
use crate::Tensor;
use plies_core::{AllAxes, Array, Axes, Axis, Error, ReduceOp, Result};

/// The input shape with the reduced axes kept as size 1, for broadcasting gradients back.
fn kept_dims(x: &Array, axes: &[usize]) -> Vec<usize> {
    let mut d = x.dims().to_vec();
    for &a in axes {
        d[a] = 1;
    }
    d
}

/// Averages need a float dtype (as in PyTorch); say so under the op's own name.
fn require_float(x: &Tensor, op: &'static str) -> Result<()> {
    match x.dtype() {
        d if d.is_float() => Ok(()),
        dtype => Err(Error::UnsupportedDType { op, dtype, device: x.device() }),
    }
}

impl Tensor {
    pub fn try_sum(&self, axes: impl Axes, keepdim: bool) -> Result<Tensor> {
        let x = self.value();
        let axes = x.shape().axes(axes, "sum")?;
        let y = x.sum(axes.as_slice(), keepdim)?;
        let (kept, shape) = (kept_dims(&x, &axes), x.shape().clone());
        Tensor::record("sum", y, &[self], move |g, _| Ok(vec![Some(g.reshape(kept)?.broadcast_to(shape)?)]))
    }

    pub fn try_mean(&self, axes: impl Axes, keepdim: bool) -> Result<Tensor> {
        require_float(self, "mean")?;
        let n = self.value().reduced_count(&axes, "mean")?;
        self.try_sum(axes, keepdim)?.try_mul_scalar(1.0 / n as f64)
    }

    /// Sum of all elements, as a rank-0 tensor.
    pub fn try_sum_all(&self) -> Result<Tensor> {
        self.try_sum(AllAxes, false)
    }

    pub fn try_mean_all(&self) -> Result<Tensor> {
        self.try_mean(AllAxes, false)
    }

    /// Max over axes; ties share the gradient evenly (as torch.amax).
    pub fn try_max(&self, axes: impl Axes, keepdim: bool) -> Result<Tensor> {
        self.extreme(ReduceOp::Max, axes, keepdim)
    }

    pub fn try_min(&self, axes: impl Axes, keepdim: bool) -> Result<Tensor> {
        self.extreme(ReduceOp::Min, axes, keepdim)
    }

    fn extreme(&self, op: ReduceOp, axes: impl Axes, keepdim: bool) -> Result<Tensor> {
        let x = self.value();
        let axes = x.shape().axes(axes, op.name())?;
        let y_kept = x.reduce(op, axes.as_slice(), true)?;
        let y = if keepdim {
            y_kept.clone()
        } else {
            let dims: Vec<usize> = (0..x.rank()).filter(|i| !axes.contains(i)).map(|i| x.dims()[i]).collect();
            y_kept.reshape(dims)?
        };
        let kept = kept_dims(&x, &axes);
        let keep = y_kept.clone();
        let out = Tensor::record(op.name(), y, &[self], move |g, _| {
            let hit = x.eq(&y_kept)?;
            let count = hit.sum(axes.as_slice(), true)?;
            Ok(vec![Some(g.reshape(kept)?.div(&count)?.mul(&hit)?)])
        })?;
        Ok(out.saving(&[&keep]))
    }

    /// Index of the max along `axis` (i32, no gradient).
    pub fn try_argmax(&self, axis: impl Axis, keepdim: bool) -> Result<Tensor> {
        Ok(Tensor::new(self.value().argmax(axis, keepdim)?))
    }

    pub fn try_argmin(&self, axis: impl Axis, keepdim: bool) -> Result<Tensor> {
        Ok(Tensor::new(self.value().argmin(axis, keepdim)?))
    }

    /// Variance with `correction` (1 = unbiased, torch's default).
    pub fn try_var(&self, axes: impl Axes, keepdim: bool, correction: usize) -> Result<Tensor> {
        require_float(self, "var")?;
        let n = self.value().reduced_count(&axes, "var")?;
        let centred = self.try_sub(&self.try_mean(&axes, true)?)?;
        centred.try_sqr()?.try_sum(axes, keepdim)?.try_mul_scalar(1.0 / (n as f64 - correction as f64).max(0.0))
    }
}

infallible! {
    sum => try_sum(axes: impl Axes, keepdim: bool);
    mean => try_mean(axes: impl Axes, keepdim: bool);
    max => try_max(axes: impl Axes, keepdim: bool);
    min => try_min(axes: impl Axes, keepdim: bool);
    argmax => try_argmax(axis: impl Axis, keepdim: bool);
    argmin => try_argmin(axis: impl Axis, keepdim: bool);
    var => try_var(axes: impl Axes, keepdim: bool, correction: usize);
}

infallible! {
    sum_all => try_sum_all();
    mean_all => try_mean_all();
}

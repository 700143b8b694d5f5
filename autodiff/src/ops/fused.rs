//! Fused ops with their own backward kernels: (log_)softmax, layer_norm, rms_norm and
//! cross-entropy.

use super::infallible;
use crate::Tensor;
use plies_core::{AllAxes, Axis, CrossEntropyOpts, DType, Error, NormKind, Result, Shape};

/// How per-row losses are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reduction {
    /// Mean over the rows that are not ignored (PyTorch's default).
    #[default]
    Mean,
    Sum,
    /// Per-row losses (ignored rows are 0).
    None,
}

impl Tensor {
    pub fn try_softmax(&self, axis: impl Axis) -> Result<Tensor> {
        self.softmax_impl(axis, false)
    }

    pub fn try_log_softmax(&self, axis: impl Axis) -> Result<Tensor> {
        self.softmax_impl(axis, true)
    }

    fn softmax_impl(&self, axis: impl Axis, log: bool) -> Result<Tensor> {
        let x = self.value();
        let name = if log { "log_softmax" } else { "softmax" };
        let a = x.shape().axis(axis, name)?;
        let y = x.softmax(a, log)?;
        let saved = y.clone();
        let keep = saved.clone();
        let out = Tensor::record(name, y, &[self], move |g, _| Ok(vec![Some(saved.softmax_grad(g, a, log)?)]))?;
        Ok(out.saving(&[&keep]))
    }

    /// LayerNorm over the last axis with optional weight and bias `[C]`.
    pub fn try_layer_norm(&self, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
        self.norm_impl(NormKind::Layer, weight, bias, eps)
    }

    /// RMSNorm over the last axis with optional weight `[C]`.
    pub fn try_rms_norm(&self, weight: Option<&Tensor>, eps: f64) -> Result<Tensor> {
        self.norm_impl(NormKind::Rms, weight, None, eps)
    }

    fn norm_impl(&self, kind: NormKind, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
        let x = self.value();
        let (w, b) = (weight.map(|w| w.value()), bias.map(|b| b.value()));
        let stats = x.norm(kind, w.as_ref(), b.as_ref(), eps)?;
        let y = stats.y.clone();
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        let has_bias = bias.is_some();
        let name = if kind == NormKind::Layer { "layer_norm" } else { "rms_norm" };
        let mut keep = vec![stats.y.clone(), stats.rstd.clone()];
        keep.extend(stats.mean.clone());
        let out = Tensor::record(name, y, &inputs, move |g, _| {
            let (dx, dw, db) = x.norm_grad(kind, w.as_ref(), has_bias, &stats, g)?;
            let mut out = vec![Some(dx)];
            if w.is_some() {
                out.push(dw);
            }
            if has_bias {
                out.push(db);
            }
            Ok(out)
        })?;
        Ok(out.saving(&keep.iter().collect::<Vec<_>>()))
    }

    /// Cross-entropy of logits `[.., C]` against i32 class targets `[..]`, with PyTorch's
    /// `ignore_index` and `label_smoothing`.
    pub fn try_cross_entropy_with(
        &self,
        targets: &Tensor,
        opts: CrossEntropyOpts,
        reduction: Reduction,
    ) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&opts.label_smoothing) {
            return Err(Error::invalid(
                "cross_entropy",
                format!("label_smoothing must be in [0, 1], got {}", opts.label_smoothing),
            ));
        }
        let (x, t) = (self.value(), targets.value());
        if x.rank() < 1 || t.rank() + 1 != x.rank() || t.dims() != &x.dims()[..x.rank() - 1] {
            return Err(Error::ShapeMismatch { op: "cross_entropy", lhs: x.shape().clone(), rhs: t.shape().clone() });
        }
        let c = x.dims()[x.rank() - 1];
        let rows = t.elem_count();
        let (x2, t2) = (x.reshape([rows, c])?, t.reshape([rows])?);
        let (losses, lse) = x2.cross_entropy(&t2, opts)?;
        // Divide by the count of kept rows without a readback: it stays on the device.
        let kept = t2.cmp_scalar(plies_core::BinaryOp::Ne, opts.ignore_index as f64)?.to_dtype(x.dtype())?;
        let (value, scale) = match reduction {
            Reduction::None => (losses.reshape(t.shape().clone())?, None),
            Reduction::Sum => (losses.sum(plies_core::AllAxes, false)?, None),
            Reduction::Mean => {
                let count = kept.sum(plies_core::AllAxes, false)?;
                (losses.sum(plies_core::AllAxes, false)?.div(&count)?, Some(count))
            }
        };
        let shape = x.shape().clone();
        let mut keep = vec![lse.clone()];
        keep.extend(scale.clone());
        let out = Tensor::record("cross_entropy", value, &[self, targets], move |g, _| {
            // Per-row upstream gradient `[rows]`.
            let g_rows = match reduction {
                Reduction::None => g.reshape([rows])?,
                Reduction::Sum => g.broadcast_to([rows])?,
                Reduction::Mean => g.div(scale.as_ref().unwrap())?.broadcast_to([rows])?,
            };
            let dx = x2.cross_entropy_grad(&t2, &lse, &g_rows, opts)?;
            Ok(vec![Some(dx.reshape(shape)?), None])
        })?;
        Ok(out.saving(&keep.iter().collect::<Vec<_>>()))
    }

    /// Mean cross-entropy with PyTorch's defaults (ignore_index -100, no smoothing).
    pub fn try_cross_entropy(&self, targets: &Tensor) -> Result<Tensor> {
        self.try_cross_entropy_with(targets, CrossEntropyOpts::default(), Reduction::Mean)
    }

    /// Mean squared error against a target of the same shape.
    pub fn try_mse(&self, target: &Tensor) -> Result<Tensor> {
        if self.shape() != target.shape() {
            return Err(Error::ShapeMismatch { op: "mse", lhs: self.shape(), rhs: target.shape() });
        }
        self.try_sub(target)?.try_sqr()?.try_mean_all()
    }

    /// One-hot encoding of i32 class ids (a constant).
    pub fn try_one_hot(&self, classes: usize, dtype: DType) -> Result<Tensor> {
        let ids = self.value();
        if ids.dtype() != DType::I32 {
            return Err(Error::invalid("one_hot", format!("indices must have dtype i32, got {}", ids.dtype())));
        }
        // An id outside 0..classes would give a silent all-zero row: check (one readback).
        if ids.elem_count() > 0 {
            let (lo, hi) = (ids.min(AllAxes, false)?.to_scalar::<i32>()?, ids.max(AllAxes, false)?.to_scalar::<i32>()?);
            let bad = if lo < 0 { Some(lo) } else { (hi as usize >= classes).then_some(hi) };
            if let Some(index) = bad {
                return Err(Error::IndexOutOfRange { op: "one_hot", index: index as i64, size: classes });
            }
        }
        let mut dims = ids.dims().to_vec();
        dims.push(classes);
        let range = plies_core::Array::arange(0.0, classes as f64, 1.0, DType::I32, ids.device())?;
        let hot = ids.unsqueeze(-1)?.eq(&range.broadcast_to(Shape::new(dims))?)?;
        Ok(Tensor::new(hot.to_dtype(dtype)?))
    }
}

infallible! {
    softmax => try_softmax(axis: impl Axis);
    log_softmax => try_log_softmax(axis: impl Axis);
    layer_norm => try_layer_norm(weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64);
    rms_norm => try_rms_norm(weight: Option<&Tensor>, eps: f64);
    cross_entropy => try_cross_entropy(targets: &Tensor);
    cross_entropy_with => try_cross_entropy_with(targets: &Tensor, opts: CrossEntropyOpts, reduction: Reduction);
    mse => try_mse(target: &Tensor);
    one_hot => try_one_hot(classes: usize, dtype: DType);
}

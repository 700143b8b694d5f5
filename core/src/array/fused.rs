//! Fused ops: (log_)softmax, layer/RMS norm, cross-entropy and AdamW, with the backward
//! kernels the autodiff rules call.

use super::Array;
use crate::backend::{AdamWStep, CrossEntropyOpts, NormGradInputs};
use crate::shape::Axis;
use crate::{Error, NormKind, Result, Shape};

/// What a fused normalisation returns: the output and the statistics backward needs.
#[derive(Clone, Debug)]
pub struct NormResult {
    pub y: Array,
    pub mean: Option<Array>,
    pub rstd: Array,
}

impl Array {
    /// Move `axis` last, apply `f` to the contiguous result, move it back.
    fn along_last(&self, axis: usize, f: impl FnOnce(&Array) -> Result<Array>) -> Result<Array> {
        let last = self.rank() - 1;
        if axis == last {
            return f(self);
        }
        f(&self.transpose(axis, last)?)?.transpose(axis, last)
    }

    /// softmax (or log_softmax) along `axis`.
    pub fn softmax(&self, axis: impl Axis, log: bool) -> Result<Array> {
        self.require_float("softmax")?;
        if self.rank() == 0 {
            return Err(Error::invalid("softmax", "needs rank >= 1"));
        }
        let a = self.shape().axis(axis, "softmax")?;
        self.along_last(a, |x| {
            let s = x.backend().softmax(x.view(), log)?;
            Ok(Array::from_storage(s, x.shape().clone()))
        })
    }

    /// Backward of (log_)softmax along `axis`: `self` is the saved output.
    pub fn softmax_grad(&self, grad: &Array, axis: impl Axis, log: bool) -> Result<Array> {
        self.check_same_shape("softmax_grad", grad)?;
        let a = self.shape().axis(axis, "softmax_grad")?;
        let last = self.rank() - 1;
        let (y, g) =
            if a == last { (self.clone(), grad.clone()) } else { (self.transpose(a, last)?, grad.transpose(a, last)?) };
        let s = y.backend().softmax_grad(y.view(), g.view(), log)?;
        let out = Array::from_storage(s, y.shape().clone());
        if a == last {
            Ok(out)
        } else {
            out.transpose(a, last)
        }
    }

    fn check_norm_param(&self, op: &'static str, p: Option<&Array>) -> Result<()> {
        if let Some(p) = p {
            self.same_device(op, p)?;
            self.same_dtype(op, p)?;
            let c = *self.dims().last().unwrap_or(&0);
            if p.dims() != [c] {
                return Err(Error::ShapeMismatch { op, lhs: self.shape().clone(), rhs: p.shape().clone() });
            }
        }
        Ok(())
    }

    /// Layer or RMS normalisation over the last axis, with optional affine parameters.
    pub fn norm(&self, kind: NormKind, weight: Option<&Array>, bias: Option<&Array>, eps: f64) -> Result<NormResult> {
        let op = match kind {
            NormKind::Layer => "layer_norm",
            NormKind::Rms => "rms_norm",
        };
        self.require_float(op)?;
        if self.rank() == 0 {
            return Err(Error::invalid(op, "needs rank >= 1"));
        }
        self.check_norm_param(op, weight)?;
        self.check_norm_param(op, bias)?;
        let rows = Shape::from(&self.dims()[..self.rank() - 1]);
        if self.dims()[self.rank() - 1] == 0 {
            // Empty rows: nothing to normalise, and their statistics are 0/0. A backend
            // cannot tell how many rows there are from zero elements, so answer here.
            let nan = Array::full(rows, f64::NAN, self.dtype(), self.device())?;
            let mean = (kind == NormKind::Layer).then(|| nan.clone());
            return Ok(NormResult { y: self.zeros_like()?, mean, rstd: nan });
        }
        let out = self.backend().norm(kind, self.view(), weight.map(|w| w.view()), bias.map(|b| b.view()), eps)?;
        Ok(NormResult {
            y: Array::from_storage(out.y, self.shape().clone()),
            mean: out.mean.map(|m| Array::from_storage(m, rows.clone())),
            rstd: Array::from_storage(out.rstd, rows),
        })
    }

    /// Gradients (dx, dweight, dbias) of a normalisation given its saved statistics.
    #[allow(clippy::type_complexity)]
    pub fn norm_grad(
        &self,
        kind: NormKind,
        weight: Option<&Array>,
        has_bias: bool,
        stats: &NormResult,
        grad: &Array,
    ) -> Result<(Array, Option<Array>, Option<Array>)> {
        self.check_same_shape("norm_grad", grad)?;
        let g = self.backend().norm_grad(NormGradInputs {
            kind,
            x: self.view(),
            weight: weight.map(|w| w.view()),
            has_bias,
            mean: stats.mean.as_ref().map(|m| m.view()),
            rstd: stats.rstd.view(),
            grad: grad.view(),
        })?;
        let c = Shape::from(&self.dims()[self.rank() - 1..]);
        Ok((
            Array::from_storage(g.dx, self.shape().clone()),
            g.dweight.map(|w| Array::from_storage(w, c.clone())),
            g.dbias.map(|b| Array::from_storage(b, c.clone())),
        ))
    }

    fn check_ce(&self, targets: &Array) -> Result<()> {
        self.require_float("cross_entropy")?;
        self.same_device("cross_entropy", targets)?;
        targets.require_index("cross_entropy")?;
        if self.rank() != 2 || targets.dims() != [self.dims()[0]] {
            return Err(Error::ShapeMismatch {
                op: "cross_entropy",
                lhs: self.shape().clone(),
                rhs: targets.shape().clone(),
            });
        }
        Ok(())
    }

    /// Per-row cross-entropy of logits `[n, c]` against i32 targets `[n]`; returns
    /// (loss `[n]`, log-sum-exp `[n]`). Ignored rows have loss 0.
    pub fn cross_entropy(&self, targets: &Array, opts: CrossEntropyOpts) -> Result<(Array, Array)> {
        self.check_ce(targets)?;
        let (l, s) = self.backend().cross_entropy(self.view(), targets.view(), opts)?;
        let n = self.dims()[0];
        Ok((Array::from_storage(l, [n]), Array::from_storage(s, [n])))
    }

    /// Gradient of the per-row losses with respect to the logits, weighted by `grad` `[n]`.
    pub fn cross_entropy_grad(
        &self,
        targets: &Array,
        lse: &Array,
        grad: &Array,
        opts: CrossEntropyOpts,
    ) -> Result<Array> {
        self.check_ce(targets)?;
        let s = self.backend().cross_entropy_grad(self.view(), targets.view(), lse.view(), grad.view(), opts)?;
        Ok(Array::from_storage(s, self.shape().clone()))
    }

    /// One AdamW step on this parameter; returns (param, m, v).
    pub fn adamw(&self, grad: &Array, m: &Array, v: &Array, hp: AdamWStep) -> Result<(Array, Array, Array)> {
        for other in [grad, m, v] {
            self.check_same_shape("adamw", other)?;
            self.same_dtype("adamw", other)?;
        }
        let (p, g, m, v) = (self.contiguous()?, grad.contiguous()?, m.contiguous()?, v.contiguous()?);
        let (p2, m2, v2) = self.backend().adamw(p.view(), g.view(), m.view(), v.view(), hp)?;
        let s = self.shape().clone();
        Ok((Array::from_storage(p2, s.clone()), Array::from_storage(m2, s.clone()), Array::from_storage(v2, s)))
    }
}

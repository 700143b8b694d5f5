//! Views and joins. Views share storage; their gradients are the inverse view (or, for
//! narrow, the gradient placed into zeros).

use super::infallible;
use crate::Tensor;
use plies_core::{Array, Axis, Error, Result, Shape};

impl Tensor {
    pub fn try_reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let x = self.value();
        let from = x.shape().clone();
        let y = x.reshape(shape)?;
        Tensor::record("reshape", y, &[self], move |g, _| Ok(vec![Some(g.reshape(from)?)]))
    }

    /// Reshape where one dimension may be `-1`.
    pub fn try_reshape_infer(&self, dims: &[i64]) -> Result<Tensor> {
        let shape = self.shape().infer(dims, "reshape")?;
        self.try_reshape(shape)
    }

    pub fn try_flatten(&self, start: impl Axis, end: impl Axis) -> Result<Tensor> {
        let shape = self.value().flatten(start, end)?.shape().clone();
        self.try_reshape(shape)
    }

    pub fn try_permute(&self, perm: &[usize]) -> Result<Tensor> {
        let y = self.value().permute(perm)?;
        let mut inverse = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        Tensor::record("permute", y, &[self], move |g, _| Ok(vec![Some(g.permute(&inverse)?)]))
    }

    pub fn try_transpose(&self, a: impl Axis, b: impl Axis) -> Result<Tensor> {
        let x = self.value();
        let (a, b) = (x.shape().axis(a, "transpose")?, x.shape().axis(b, "transpose")?);
        let y = x.transpose(a, b)?;
        Tensor::record("transpose", y, &[self], move |g, _| Ok(vec![Some(g.transpose(a, b)?)]))
    }

    /// Swap the last two axes.
    pub fn try_t(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::invalid("t", format!("needs rank >= 2, got shape {}", self.shape())));
        }
        self.try_transpose(-2, -1)
    }

    pub fn try_narrow(&self, axis: impl Axis, start: usize, len: usize) -> Result<Tensor> {
        let x = self.value();
        let a = x.shape().axis(axis, "narrow")?;
        let y = x.narrow(a, start, len)?;
        let size = x.dims()[a];
        Tensor::record("narrow", y, &[self], move |g, _| {
            // Place g between zero blocks along the axis.
            let mut parts = Vec::new();
            let block = |n: usize| -> Result<Array> {
                let mut d = g.dims().to_vec();
                d[a] = n;
                Array::zeros(d, g.dtype(), g.device())
            };
            let (before, after) = (block(start)?, block(size - start - len)?);
            if start > 0 {
                parts.push(&before);
            }
            parts.push(g);
            if size - start - len > 0 {
                parts.push(&after);
            }
            Ok(vec![Some(Array::cat(&parts, a)?)])
        })
    }

    /// Broadcast to a larger shape without copying (torch `expand`).
    pub fn try_broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let y = self.value().broadcast_to(shape)?;
        // backward's central sum_to_shape reduces the broadcast dims.
        Tensor::record("broadcast_to", y, &[self], |g, _| Ok(vec![Some(g.clone())]))
    }

    pub fn try_squeeze(&self, axis: impl Axis) -> Result<Tensor> {
        let shape = self.value().squeeze(axis)?.shape().clone();
        self.try_reshape(shape)
    }

    pub fn try_unsqueeze(&self, axis: impl Axis) -> Result<Tensor> {
        let shape = self.value().unsqueeze(axis)?.shape().clone();
        self.try_reshape(shape)
    }

    /// A dense copy when the layout is strided (gradient passes through unchanged).
    pub fn try_contiguous(&self) -> Result<Tensor> {
        let x = self.value();
        if x.is_contiguous() {
            return Ok(self.clone());
        }
        Tensor::record("contiguous", x.contiguous()?, &[self], |g, _| Ok(vec![Some(g.clone())]))
    }

    pub fn try_cat(tensors: &[&Tensor], axis: impl Axis) -> Result<Tensor> {
        let values: Vec<Array> = tensors.iter().map(|t| t.value()).collect();
        let first = values.first().ok_or_else(|| Error::invalid("cat", "needs at least one tensor"))?;
        let a = first.shape().axis(axis, "cat")?;
        let y = Array::cat(&values.iter().collect::<Vec<_>>(), a)?;
        let sizes: Vec<usize> = values.iter().map(|v| v.dims()[a]).collect();
        Tensor::record("cat", y, tensors, move |g, _| Ok(g.split(&sizes, a)?.into_iter().map(Some).collect()))
    }

    #[track_caller]
    pub fn cat(tensors: &[&Tensor], axis: impl Axis) -> Tensor {
        crate::tensor::ok(Tensor::try_cat(tensors, axis))
    }

    pub fn try_stack(tensors: &[&Tensor], axis: impl Axis) -> Result<Tensor> {
        let first = tensors.first().ok_or_else(|| Error::invalid("stack", "needs at least one tensor"))?;
        let a = axis.resolve(first.rank() + 1, "stack")?;
        for t in tensors {
            if t.shape() != first.shape() {
                return Err(Error::ShapeMismatch { op: "stack", lhs: first.shape(), rhs: t.shape() });
            }
        }
        let parts = tensors.iter().map(|t| t.try_unsqueeze(a)).collect::<Result<Vec<_>>>()?;
        Tensor::try_cat(&parts.iter().collect::<Vec<_>>(), a)
    }

    #[track_caller]
    pub fn stack(tensors: &[&Tensor], axis: impl Axis) -> Tensor {
        crate::tensor::ok(Tensor::try_stack(tensors, axis))
    }

    pub fn try_split(&self, sizes: &[usize], axis: impl Axis) -> Result<Vec<Tensor>> {
        let a = self.shape().axis(axis, "split")?;
        let pieces = self.value().split(sizes, a)?; // validates the sizes
        let mut at = 0;
        pieces
            .iter()
            .map(|p| {
                let n = p.dims()[a];
                at += n;
                self.try_narrow(a, at - n, n)
            })
            .collect()
    }

    #[track_caller]
    pub fn split(&self, sizes: &[usize], axis: impl Axis) -> Vec<Tensor> {
        crate::tensor::ok(self.try_split(sizes, axis))
    }

    pub fn try_chunk(&self, n: usize, axis: impl Axis) -> Result<Vec<Tensor>> {
        let a = self.shape().axis(axis, "chunk")?;
        let sizes: Vec<usize> = self.value().chunk(n, a)?.iter().map(|p| p.dims()[a]).collect();
        self.try_split(&sizes, a)
    }

    #[track_caller]
    pub fn chunk(&self, n: usize, axis: impl Axis) -> Vec<Tensor> {
        crate::tensor::ok(self.try_chunk(n, axis))
    }

    /// Change dtype; the gradient is cast back.
    pub fn try_to_dtype(&self, dtype: plies_core::DType) -> Result<Tensor> {
        let x = self.value();
        let from = x.dtype();
        let y = x.to_dtype(dtype)?;
        Tensor::record("to_dtype", y, &[self], move |g, _| Ok(vec![Some(g.to_dtype(from)?)]))
    }

    /// Move to another device; the gradient moves back.
    pub fn try_to_device(&self, device: plies_core::Device) -> Result<Tensor> {
        let x = self.value();
        let from = x.device();
        if from == device {
            return Ok(self.clone());
        }
        let y = x.to_device(device)?;
        Tensor::record("to_device", y, &[self], move |g, _| Ok(vec![Some(g.to_device(from)?)]))
    }
}

impl Tensor {
    #[track_caller]
    pub fn reshape(&self, shape: impl Into<Shape>) -> Tensor {
        crate::tensor::ok(self.try_reshape(shape))
    }
    #[track_caller]
    pub fn flatten(&self, start: impl Axis, end: impl Axis) -> Tensor {
        crate::tensor::ok(self.try_flatten(start, end))
    }
    #[track_caller]
    pub fn transpose(&self, a: impl Axis, b: impl Axis) -> Tensor {
        crate::tensor::ok(self.try_transpose(a, b))
    }
    #[track_caller]
    pub fn narrow(&self, axis: impl Axis, start: usize, len: usize) -> Tensor {
        crate::tensor::ok(self.try_narrow(axis, start, len))
    }
    #[track_caller]
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Tensor {
        crate::tensor::ok(self.try_broadcast_to(shape))
    }
    #[track_caller]
    pub fn squeeze(&self, axis: impl Axis) -> Tensor {
        crate::tensor::ok(self.try_squeeze(axis))
    }
    #[track_caller]
    pub fn unsqueeze(&self, axis: impl Axis) -> Tensor {
        crate::tensor::ok(self.try_unsqueeze(axis))
    }
}

infallible! {
    reshape_infer => try_reshape_infer(dims: &[i64]);
    permute => try_permute(perm: &[usize]);
    t => try_t();
    contiguous => try_contiguous();
    to_dtype => try_to_dtype(dtype: plies_core::DType);
    to_device => try_to_device(device: plies_core::Device);
}

//! Views (no copy unless the strides force one) and joining/splitting.

use super::Array;
use crate::shape::Axis;
use crate::{Error, Layout, Result, Shape};

impl Array {
    /// A dense row-major copy, or `self` when already dense.
    pub fn contiguous(&self) -> Result<Array> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        Ok(Array::from_storage(self.backend().copy(self.view())?, self.shape().clone()))
    }

    /// Same elements in a new shape; a view when the strides allow, else a copy.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Array> {
        let shape = shape.into();
        if shape.elem_count() != self.elem_count() {
            return Err(Error::ElementCount { op: "reshape", from: self.shape().clone(), to: shape });
        }
        match self.layout.reshape(&shape) {
            Some(l) => Ok(self.with_layout(l)),
            None => Ok(self.contiguous()?.with_layout(Layout::contiguous(shape))),
        }
    }

    /// Reshape where one dimension may be `-1`.
    pub fn reshape_infer(&self, dims: &[i64]) -> Result<Array> {
        let shape = self.shape().infer(dims, "reshape")?;
        self.reshape(shape)
    }

    /// Merge axes `start..=end` into one.
    pub fn flatten(&self, start: impl Axis, end: impl Axis) -> Result<Array> {
        if self.rank() == 0 {
            return self.reshape([1]);
        }
        let (s, e) = (self.shape().axis(start, "flatten")?, self.shape().axis(end, "flatten")?);
        if s > e {
            return Err(Error::invalid("flatten", format!("start axis {s} is after end axis {e}")));
        }
        let d = self.dims();
        let mut dims = d[..s].to_vec();
        dims.push(d[s..=e].iter().product());
        dims.extend_from_slice(&d[e + 1..]);
        self.reshape(dims)
    }

    pub fn permute(&self, perm: &[usize]) -> Result<Array> {
        Ok(self.with_layout(self.layout.permute(perm)?))
    }

    pub fn transpose(&self, a: impl Axis, b: impl Axis) -> Result<Array> {
        let (a, b) = (self.shape().axis(a, "transpose")?, self.shape().axis(b, "transpose")?);
        Ok(self.with_layout(self.layout.transpose(a, b)?))
    }

    /// Swap the last two axes.
    pub fn t(&self) -> Result<Array> {
        if self.rank() < 2 {
            return Err(Error::invalid("t", format!("needs rank >= 2, got shape {}", self.shape())));
        }
        self.transpose(-2, -1)
    }

    /// `len` elements of `axis` starting at `start`.
    pub fn narrow(&self, axis: impl Axis, start: usize, len: usize) -> Result<Array> {
        let a = self.shape().axis(axis, "narrow")?;
        Ok(self.with_layout(self.layout.narrow(a, start, len)?))
    }

    /// Broadcast to `shape` (numpy rules) without copying.
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Array> {
        let shape = shape.into();
        Ok(self.with_layout(self.layout.broadcast_to(&shape)?))
    }

    /// Remove a size-1 axis.
    pub fn squeeze(&self, axis: impl Axis) -> Result<Array> {
        let a = self.shape().axis(axis, "squeeze")?;
        Ok(self.with_layout(self.layout.squeeze(a)?))
    }

    /// Insert a size-1 axis; `axis` may be `rank` (or -1 for the end).
    pub fn unsqueeze(&self, axis: impl Axis) -> Result<Array> {
        let a = axis.resolve(self.rank() + 1, "unsqueeze")?;
        Ok(self.with_layout(self.layout.unsqueeze(a)))
    }

    /// Join along an existing axis. All inputs must agree on the other dims.
    pub fn cat(arrays: &[&Array], axis: impl Axis) -> Result<Array> {
        let first = arrays.first().ok_or_else(|| Error::invalid("cat", "needs at least one array"))?;
        let a = first.shape().axis(axis, "cat")?;
        let mut dims = first.dims().to_vec();
        dims[a] = 0;
        for x in arrays {
            first.same_device("cat", x)?;
            first.same_dtype("cat", x)?;
            let ok = x.rank() == first.rank() && (0..x.rank()).all(|i| i == a || x.dims()[i] == first.dims()[i]);
            if !ok {
                return Err(Error::ShapeMismatch { op: "cat", lhs: first.shape().clone(), rhs: x.shape().clone() });
            }
            dims[a] += x.dims()[a];
        }
        let shape = Shape::new(dims);
        let backend = first.backend();
        let mut out = backend.full(shape.elem_count(), first.dtype(), 0.0)?;
        let full = Layout::contiguous(shape.clone());
        let mut at = 0;
        for x in arrays {
            let len = x.dims()[a];
            backend.copy_into(x.view(), out.as_mut(), &full.narrow(a, at, len)?)?;
            at += len;
        }
        Ok(Array::from_storage(out, shape))
    }

    /// Join along a new axis.
    pub fn stack(arrays: &[&Array], axis: impl Axis) -> Result<Array> {
        let first = arrays.first().ok_or_else(|| Error::invalid("stack", "needs at least one array"))?;
        let a = axis.resolve(first.rank() + 1, "stack")?;
        for x in arrays {
            if x.shape() != first.shape() {
                return Err(Error::ShapeMismatch { op: "stack", lhs: first.shape().clone(), rhs: x.shape().clone() });
            }
        }
        let parts = arrays.iter().map(|x| x.unsqueeze(a)).collect::<Result<Vec<_>>>()?;
        Array::cat(&parts.iter().collect::<Vec<_>>(), a)
    }

    /// Views of consecutive pieces of the given sizes along `axis`.
    pub fn split(&self, sizes: &[usize], axis: impl Axis) -> Result<Vec<Array>> {
        let a = self.shape().axis(axis, "split")?;
        if sizes.iter().sum::<usize>() != self.dims()[a] {
            return Err(Error::invalid(
                "split",
                format!("sizes {sizes:?} do not add up to {} (axis {a} of shape {})", self.dims()[a], self.shape()),
            ));
        }
        let mut at = 0;
        sizes
            .iter()
            .map(|&n| {
                let v = self.narrow(a, at, n);
                at += n;
                v
            })
            .collect()
    }

    /// `n` pieces of (nearly) equal size along `axis`, the last possibly smaller (as torch.chunk).
    pub fn chunk(&self, n: usize, axis: impl Axis) -> Result<Vec<Array>> {
        let a = self.shape().axis(axis, "chunk")?;
        if n == 0 {
            return Err(Error::invalid("chunk", "number of chunks must be positive"));
        }
        let size = self.dims()[a];
        let each = size.div_ceil(n).max(1);
        let mut sizes = Vec::new();
        let mut left = size;
        while left > 0 {
            sizes.push(each.min(left));
            left -= each.min(left);
        }
        self.split(&sizes, a)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Array, DType, Device};

    #[test]
    fn cat_copies_strided_and_broadcast_parts() {
        let a = Array::from_vec((0..12).map(|v| v as f32).collect(), [3, 4], Device::Cpu).unwrap();
        let at = a.t().unwrap(); // [4, 3], strided
        let b = Array::from_vec(vec![100f32, 200., 300.], [1, 3], Device::Cpu).unwrap().broadcast_to([2, 3]).unwrap();
        let c = Array::zeros([4, 3], DType::F32, Device::Cpu).unwrap().narrow(0, 1, 1).unwrap();
        for axis in [0usize, 1] {
            let parts: Vec<Array> = if axis == 0 {
                vec![at.clone(), b.clone(), c.clone()]
            } else {
                vec![at.narrow(0, 0, 2).unwrap(), b.clone()]
            };
            let got = Array::cat(&parts.iter().collect::<Vec<_>>(), axis).unwrap();
            let rows: Vec<Vec<f32>> = parts
                .iter()
                .map(|p| p.to_vec::<f32>().unwrap().chunks(p.dims()[1]).map(<[f32]>::to_vec).collect::<Vec<_>>())
                .fold(Vec::new(), |mut acc: Vec<Vec<f32>>, rows| {
                    if axis == 0 || acc.is_empty() {
                        acc.extend(rows);
                    } else {
                        acc.iter_mut().zip(rows).for_each(|(a, r)| a.extend(r));
                    }
                    acc
                });
            assert_eq!(got.to_vec::<f32>().unwrap(), rows.concat(), "axis {axis}");
        }
    }
}

//! Elementwise ops with broadcasting, reductions, matmul and indexing.

use super::Array;
use crate::shape::{Axes, Axis};
use crate::{BinaryOp, DType, Error, ReduceOp, Result, Shape, UnaryOp};

macro_rules! unary_methods {
    ($($name:ident, $try:ident => $op:ident;)*) => {
        $(pub fn $name(&self) -> Result<Array> { self.unary(UnaryOp::$op) })*
    };
}

macro_rules! binary_methods {
    ($($name:ident => $op:expr),* $(,)?) => {
        $(pub fn $name(&self, rhs: &Array) -> Result<Array> { self.binary($op, rhs) })*
    };
}

impl Array {
    pub fn unary(&self, op: UnaryOp) -> Result<Array> {
        let s = self.backend().unary(op, self.view())?;
        Ok(Array::from_storage(s, self.shape().clone()))
    }

    /// `grad * op'(self)`: the backward of a unary op.
    pub fn unary_grad(&self, op: UnaryOp, grad: &Array) -> Result<Array> {
        self.check_same_shape(op.name(), grad)?;
        let s = self.backend().unary_grad(op, self.view(), grad.view())?;
        Ok(Array::from_storage(s, self.shape().clone()))
    }

    // One method per op of the table in op.rs without scalar parameters.
    crate::with_plain_unary_ops!(unary_methods);

    pub fn exp(&self) -> Result<Array> {
        self.unary(UnaryOp::Exp)
    }

    /// `self * mul + add`.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Array> {
        self.unary(UnaryOp::Affine { mul, add })
    }
    pub fn add_scalar(&self, v: f64) -> Result<Array> {
        self.affine(1.0, v)
    }
    pub fn mul_scalar(&self, v: f64) -> Result<Array> {
        self.affine(v, 0.0)
    }
    pub fn powf(&self, e: f64) -> Result<Array> {
        self.unary(UnaryOp::Powf(e))
    }
    pub fn clamp(&self, min: f64, max: f64) -> Result<Array> {
        self.unary(UnaryOp::MaxScalar(min))?.unary(UnaryOp::MinScalar(max))
    }

    /// Elementwise op with numpy broadcasting.
    pub fn binary(&self, op: BinaryOp, rhs: &Array) -> Result<Array> {
        let name = op.name();
        self.same_device(name, rhs)?;
        self.same_dtype(name, rhs)?;
        let shape = self.shape().broadcast(rhs.shape(), name)?;
        let (l, r) = (self.broadcast_to(shape.clone())?, rhs.broadcast_to(shape.clone())?);
        let s = self.backend().binary(op, l.view(), r.view())?;
        Ok(Array::from_storage(s, shape))
    }

    binary_methods! {
        add => BinaryOp::Add, sub => BinaryOp::Sub, mul => BinaryOp::Mul, div => BinaryOp::Div,
        pow => BinaryOp::Pow, maximum => BinaryOp::Maximum, minimum => BinaryOp::Minimum,
        eq => BinaryOp::Eq, ne => BinaryOp::Ne, lt => BinaryOp::Lt, le => BinaryOp::Le,
        gt => BinaryOp::Gt, ge => BinaryOp::Ge,
    }

    /// Compare with a scalar: 1 where `self op v`, else 0.
    pub fn cmp_scalar(&self, op: BinaryOp, v: f64) -> Result<Array> {
        self.binary(op, &self.scalar_like(v, &Shape::scalar())?)
    }

    /// `cond != 0 ? on_true : on_false`, broadcasting all three.
    pub fn where_cond(cond: &Array, on_true: &Array, on_false: &Array) -> Result<Array> {
        cond.same_device("where", on_true)?;
        cond.same_device("where", on_false)?;
        on_true.same_dtype("where", on_false)?;
        let shape = cond.shape().broadcast(on_true.shape(), "where")?.broadcast(on_false.shape(), "where")?;
        let (c, t, f) = (
            cond.broadcast_to(shape.clone())?,
            on_true.broadcast_to(shape.clone())?,
            on_false.broadcast_to(shape.clone())?,
        );
        let s = cond.backend().where_cond(c.view(), t.view(), f.view())?;
        Ok(Array::from_storage(s, shape))
    }

    /// `value` where `mask != 0`, else `self`.
    pub fn masked_fill(&self, mask: &Array, value: f64) -> Result<Array> {
        Array::where_cond(mask, &self.scalar_like(value, &Shape::scalar())?, self)
    }

    /// Reduce over `axes`; `keepdim` keeps them as size-1 dims.
    pub fn reduce(&self, op: ReduceOp, axes: impl Axes, keepdim: bool) -> Result<Array> {
        let axes = self.shape().axes(axes, op.name())?;
        let mut kept = self.dims().to_vec();
        for &a in &axes {
            kept[a] = 1;
        }
        let reduced: usize = axes.iter().map(|&a| self.dims()[a]).product();
        let out_count: usize = kept.iter().product();
        // Max, min and the arg-reductions have no value over zero elements (as in PyTorch);
        // an empty output is empty whatever the op.
        if reduced == 0 && out_count > 0 && op != ReduceOp::Sum {
            return Err(Error::invalid(op.name(), format!("cannot reduce an empty array of shape {}", self.shape())));
        }
        let out = if out_count == 0 {
            let dtype = if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) { DType::I32 } else { self.dtype() };
            Array::zeros(kept.clone(), dtype, self.device())?
        } else {
            Array::from_storage(self.backend().reduce(op, self.view(), &axes)?, kept.clone())
        };
        if keepdim {
            return Ok(out);
        }
        let dims: Vec<usize> = kept.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect();
        out.reshape(dims)
    }

    pub fn sum(&self, axes: impl Axes, keepdim: bool) -> Result<Array> {
        self.reduce(ReduceOp::Sum, axes, keepdim)
    }
    pub fn max(&self, axes: impl Axes, keepdim: bool) -> Result<Array> {
        self.reduce(ReduceOp::Max, axes, keepdim)
    }
    pub fn min(&self, axes: impl Axes, keepdim: bool) -> Result<Array> {
        self.reduce(ReduceOp::Min, axes, keepdim)
    }
    pub fn argmax(&self, axis: impl Axis, keepdim: bool) -> Result<Array> {
        self.reduce(ReduceOp::ArgMax, [self.shape().axis(axis, "argmax")?], keepdim)
    }
    pub fn argmin(&self, axis: impl Axis, keepdim: bool) -> Result<Array> {
        self.reduce(ReduceOp::ArgMin, [self.shape().axis(axis, "argmin")?], keepdim)
    }

    /// Number of elements a reduction over `axes` combines.
    pub fn reduced_count(&self, axes: impl Axes, op: &'static str) -> Result<usize> {
        Ok(self.shape().axes(axes, op)?.iter().map(|&a| self.dims()[a]).product())
    }

    pub fn mean(&self, axes: impl Axes, keepdim: bool) -> Result<Array> {
        self.require_float("mean")?;
        let n = self.reduced_count(&axes, "mean")?;
        self.sum(axes, keepdim)?.mul_scalar(1.0 / n as f64)
    }

    /// Variance with `correction` subtracted from the count (1 = unbiased, as torch's default).
    pub fn var(&self, axes: impl Axes, keepdim: bool, correction: usize) -> Result<Array> {
        self.require_float("var")?;
        let n = self.reduced_count(&axes, "var")?;
        let centred = self.sub(&self.mean(&axes, true)?)?;
        centred.sqr()?.sum(axes, keepdim)?.mul_scalar(1.0 / (n as f64 - correction as f64).max(0.0))
    }

    /// Batched matrix product with broadcast batch dims (1-d operands as in numpy).
    pub fn matmul(&self, rhs: &Array) -> Result<Array> {
        self.same_device("matmul", rhs)?;
        self.same_dtype("matmul", rhs)?;
        self.require_float("matmul")?;
        let err = || Error::ShapeMismatch { op: "matmul", lhs: self.shape().clone(), rhs: rhs.shape().clone() };
        if self.rank() == 0 || rhs.rank() == 0 {
            return Err(err());
        }
        let a = if self.rank() == 1 { self.unsqueeze(0)? } else { self.clone() };
        let b = if rhs.rank() == 1 { rhs.unsqueeze(1)? } else { rhs.clone() };
        let (ra, rb) = (a.rank(), b.rank());
        let (m, k, k2, n) = (a.dims()[ra - 2], a.dims()[ra - 1], b.dims()[rb - 2], b.dims()[rb - 1]);
        if k != k2 {
            return Err(err());
        }
        let batch = Shape::from(&a.dims()[..ra - 2])
            .broadcast(&Shape::from(&b.dims()[..rb - 2]), "matmul")
            .map_err(|_| err())?;
        let mut da = batch.dims().to_vec();
        da.extend([m, k]);
        let mut db = batch.dims().to_vec();
        db.extend([k, n]);
        let (a, b) = (a.broadcast_to(da)?, b.broadcast_to(db)?);
        let mut out_dims = batch.dims().to_vec();
        out_dims.extend([m, n]);
        let s = self.backend().matmul(a.view(), b.view())?;
        let mut out = Array::from_storage(s, out_dims);
        if self.rank() == 1 {
            out = out.squeeze(-2)?;
        }
        if rhs.rank() == 1 {
            out = out.squeeze(-1)?;
        }
        Ok(out)
    }

    /// Rows (slices along `axis`) picked by a 1-d i32 index.
    pub fn index_select(&self, axis: impl Axis, idx: &Array) -> Result<Array> {
        let a = self.shape().axis(axis, "index_select")?;
        self.check_index_1d("index_select", idx)?;
        let s = self.backend().index_select(self.view(), a, idx.view())?;
        let mut dims = self.dims().to_vec();
        dims[a] = idx.elem_count();
        Ok(Array::from_storage(s, dims))
    }

    /// `self` with `src` added at the positions `idx` selects along `axis`.
    pub fn index_add(&self, axis: impl Axis, idx: &Array, src: &Array) -> Result<Array> {
        let a = self.shape().axis(axis, "index_add")?;
        self.check_index_1d("index_add", idx)?;
        self.same_dtype("index_add", src)?;
        let mut want = self.dims().to_vec();
        want[a] = idx.elem_count();
        if src.dims() != want.as_slice() {
            return Err(Error::ShapeMismatch { op: "index_add", lhs: Shape::new(want), rhs: src.shape().clone() });
        }
        let s = self.backend().index_add(self.view(), a, idx.view(), src.view())?;
        Ok(Array::from_storage(s, self.shape().clone()))
    }

    /// `out[..i..] = self[..idx[..i..]..]` along `axis`; `idx` has the output's shape.
    pub fn gather(&self, axis: impl Axis, idx: &Array) -> Result<Array> {
        let a = self.shape().axis(axis, "gather")?;
        self.check_gather_index("gather", a, idx)?;
        let s = self.backend().gather(self.view(), a, idx.view())?;
        Ok(Array::from_storage(s, idx.shape().clone()))
    }

    /// `self` with `src[..i..]` added at `[..idx[..i..]..]` along `axis`.
    pub fn scatter_add(&self, axis: impl Axis, idx: &Array, src: &Array) -> Result<Array> {
        let a = self.shape().axis(axis, "scatter_add")?;
        self.check_gather_index("scatter_add", a, idx)?;
        self.same_dtype("scatter_add", src)?;
        if src.shape() != idx.shape() {
            return Err(Error::ShapeMismatch { op: "scatter_add", lhs: idx.shape().clone(), rhs: src.shape().clone() });
        }
        let s = self.backend().scatter_add(self.view(), a, idx.view(), src.view())?;
        Ok(Array::from_storage(s, self.shape().clone()))
    }

    /// Rows of an embedding table `[vocab, dim]` for i32 ids of any shape.
    pub fn embedding(&self, ids: &Array) -> Result<Array> {
        if self.rank() != 2 {
            return Err(Error::invalid("embedding", format!("table must be [vocab, dim], got {}", self.shape())));
        }
        let flat = ids.reshape([ids.elem_count()])?;
        let rows = self.index_select(0, &flat)?;
        let mut dims = ids.dims().to_vec();
        dims.push(self.dims()[1]);
        rows.reshape(dims)
    }

    pub(crate) fn check_same_shape(&self, op: &'static str, other: &Array) -> Result<()> {
        if self.shape() != other.shape() {
            return Err(Error::ShapeMismatch { op, lhs: self.shape().clone(), rhs: other.shape().clone() });
        }
        self.same_device(op, other)
    }

    fn check_index_1d(&self, op: &'static str, idx: &Array) -> Result<()> {
        self.same_device(op, idx)?;
        idx.require_index(op)?;
        if idx.rank() != 1 {
            return Err(Error::invalid(op, format!("index must be 1-d, got shape {}", idx.shape())));
        }
        Ok(())
    }

    fn check_gather_index(&self, op: &'static str, axis: usize, idx: &Array) -> Result<()> {
        self.same_device(op, idx)?;
        idx.require_index(op)?;
        let ok = idx.rank() == self.rank() && (0..self.rank()).all(|i| i == axis || idx.dims()[i] <= self.dims()[i]);
        if !ok {
            return Err(Error::ShapeMismatch { op, lhs: self.shape().clone(), rhs: idx.shape().clone() });
        }
        Ok(())
    }
}

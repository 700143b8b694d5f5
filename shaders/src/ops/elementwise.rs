//! Fills, copies, casts, unary ops with their derivatives, binary ops and `where`: one
//! thread per output element, every input read through its strides (broadcasts are
//! stride 0), dims merged first wherever all operands allow.

use crate::gpu::GpuBackend;
use crate::kernels::{Family, Kernel};
use crate::params::Params;
use crate::storage::GpuStorage;
use plies_core::backend::{Storage, View};
use plies_core::{BinaryOp, DType, Error, Layout, Result, UnaryOp};

/// The op code (from core's table) and the op's two scalar parameters.
fn unary_code(op: UnaryOp) -> (u32, f32, f32) {
    let (a, b) = match op {
        UnaryOp::Affine { mul, add } => (mul as f32, add as f32),
        UnaryOp::Powf(v) | UnaryOp::MaxScalar(v) | UnaryOp::MinScalar(v) => (v as f32, 0.0),
        _ => (0.0, 0.0),
    };
    (op.code(), a, b)
}

impl GpuBackend {
    pub(crate) fn fill(&self, len: usize, dtype: DType, value: f64) -> Result<GpuStorage> {
        let out = self.output("full", len, dtype)?;
        let bits = match dtype {
            DType::I32 => (value as i32) as u32,
            _ => (value as f32).to_bits(),
        };
        let p = Params::new(len).extra(0, bits);
        self.run(&Kernel::new(Family::Copy, "fill"), &p, &[(2, out.buffer())], [self.groups(len), 1, 1])?;
        Ok(out)
    }

    pub(crate) fn copy_into_view(&self, src: View, dst: &mut dyn Storage, dst_layout: &Layout) -> Result<()> {
        let s = self.storage_of("copy_into", src)?;
        let d = dst
            .as_any()
            .downcast_ref::<GpuStorage>()
            .ok_or_else(|| Error::invalid("copy_into", "destination is not a GPU storage"))?;
        if d.dtype() != src.dtype() {
            return Err(Error::DTypeMismatch { op: "copy_into", lhs: d.dtype(), rhs: src.dtype() });
        }
        let n = src.layout.elem_count();
        let p = Params::new(n).views(&[src.layout, dst_layout]);
        self.run(
            &Kernel::new(Family::Copy, "copy_into"),
            &p,
            &[(1, s.buffer()), (2, d.buffer())],
            [self.groups(n), 1, 1],
        )
    }

    pub(crate) fn cast_view(&self, x: View, dtype: DType) -> Result<GpuStorage> {
        self.supported("cast", dtype)?;
        let entry = match (x.dtype(), dtype) {
            (a, b) if a == b => return self.copy_strided("cast", x),
            (DType::F32, DType::I32) => "cast_f32_i32",
            (DType::I32, DType::F32) => "cast_i32_f32",
            (a, _) => return Err(Error::UnsupportedDType { op: "cast", dtype: a, device: self.plies_device() }),
        };
        let s = self.storage_of("cast", x)?;
        let n = x.layout.elem_count();
        let out = self.output("cast", n, dtype)?;
        let p = Params::new(n).views(&[x.layout]);
        self.run(&Kernel::new(Family::Copy, entry), &p, &[(1, s.buffer()), (2, out.buffer())], [self.groups(n), 1, 1])?;
        Ok(out)
    }

    pub(crate) fn unary_view(&self, op: UnaryOp, x: View) -> Result<GpuStorage> {
        let s = self.storage_of(op.name(), x)?;
        let n = x.layout.elem_count();
        let (code, a, b) = unary_code(op);
        let (entry, binds) = match x.dtype() {
            DType::F32 => ("unary_f32", (1, 3)),
            DType::I32 if matches!(op, UnaryOp::Neg | UnaryOp::Abs) => ("unary_i32", (4, 5)),
            d => return Err(Error::UnsupportedDType { op: op.name(), dtype: d, device: self.plies_device() }),
        };
        let out = self.output(op.name(), n, x.dtype())?;
        let p = Params::new(n).op(code).scalar(0, a).scalar(1, b).views(&[x.layout]);
        self.run(
            &Kernel::new(Family::Unary, entry),
            &p,
            &[(binds.0, s.buffer()), (binds.1, out.buffer())],
            [self.groups(n), 1, 1],
        )?;
        Ok(out)
    }

    pub(crate) fn unary_grad_view(&self, op: UnaryOp, x: View, grad: View) -> Result<GpuStorage> {
        self.float_only(op.name(), x.dtype())?;
        if grad.dtype() != x.dtype() {
            return Err(Error::DTypeMismatch { op: op.name(), lhs: x.dtype(), rhs: grad.dtype() });
        }
        let (sx, sg) = (self.storage_of(op.name(), x)?, self.storage_of(op.name(), grad)?);
        let n = x.layout.elem_count();
        let (code, a, b) = unary_code(op);
        let out = self.output(op.name(), n, DType::F32)?;
        let p = Params::new(n).op(code).scalar(0, a).scalar(1, b).views(&[x.layout, grad.layout]);
        self.run(
            &Kernel::new(Family::Unary, "unary_grad_f32"),
            &p,
            &[(1, sx.buffer()), (2, sg.buffer()), (3, out.buffer())],
            [self.groups(n), 1, 1],
        )?;
        Ok(out)
    }

    pub(crate) fn binary_view(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<GpuStorage> {
        if lhs.dtype() != rhs.dtype() {
            return Err(Error::DTypeMismatch { op: op.name(), lhs: lhs.dtype(), rhs: rhs.dtype() });
        }
        self.supported(op.name(), lhs.dtype())?;
        let (sa, sb) = (self.storage_of(op.name(), lhs)?, self.storage_of(op.name(), rhs)?);
        let n = lhs.layout.elem_count();
        let (entry, binds) = match lhs.dtype() {
            DType::F32 => ("binary_f32", [1, 2, 3]),
            _ => ("binary_i32", [4, 5, 6]),
        };
        let out = self.output(op.name(), n, lhs.dtype())?;
        let p = Params::new(n).op(op.code()).views(&[lhs.layout, rhs.layout]);
        self.run(
            &Kernel::new(Family::Binary, entry),
            &p,
            &[(binds[0], sa.buffer()), (binds[1], sb.buffer()), (binds[2], out.buffer())],
            [self.groups(n), 1, 1],
        )?;
        Ok(out)
    }

    pub(crate) fn where_view(&self, cond: View, on_true: View, on_false: View) -> Result<GpuStorage> {
        if on_true.dtype() != on_false.dtype() {
            return Err(Error::DTypeMismatch { op: "where", lhs: on_true.dtype(), rhs: on_false.dtype() });
        }
        self.supported("where", on_true.dtype())?;
        self.supported("where", cond.dtype())?;
        let (sc, st, sf) =
            (self.storage_of("where", cond)?, self.storage_of("where", on_true)?, self.storage_of("where", on_false)?);
        let n = cond.layout.elem_count();
        let out = self.output("where", n, on_true.dtype())?;
        let p = Params::new(n).flags((cond.dtype() == DType::F32) as u32).views(&[
            cond.layout,
            on_true.layout,
            on_false.layout,
        ]);
        self.run(
            &Kernel::new(Family::Binary, "where_select"),
            &p,
            &[(7, sc.buffer()), (8, st.buffer()), (9, sf.buffer()), (10, out.buffer())],
            [self.groups(n), 1, 1],
        )?;
        Ok(out)
    }
}

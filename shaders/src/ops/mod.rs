//! The ops, one file per kernel family; `backend.rs` maps the `Backend` trait onto them.
//! Shared here: finding an operand's buffer, allocating outputs, and dense copies of
//! small secondary operands.

mod elementwise;
mod fused;
mod index;
mod matmul;
mod random;
mod reduce;

pub use matmul::MatmulConfig;
pub(crate) use matmul::MatmulProblem;

use crate::gpu::GpuBackend;
use crate::kernels::{Family, Kernel};
use crate::params::Params;
use crate::storage::GpuStorage;
use plies_core::backend::View;
use plies_core::{DType, Error, Result};

/// An operand made dense: the original storage when the view already is, else a copy.
pub(crate) enum Dense<'a> {
    Borrowed(&'a GpuStorage, usize),
    Owned(GpuStorage),
}

impl Dense<'_> {
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        match self {
            Dense::Borrowed(s, _) => s.buffer(),
            Dense::Owned(s) => s.buffer(),
        }
    }

    /// Element offset of the first element.
    pub(crate) fn offset(&self) -> usize {
        match self {
            Dense::Borrowed(_, o) => *o,
            Dense::Owned(_) => 0,
        }
    }
}

impl GpuBackend {
    /// The GPU storage behind a view (an error, not a panic, for a foreign storage).
    pub(crate) fn storage_of<'a>(&self, op: &'static str, v: View<'a>) -> Result<&'a GpuStorage> {
        let s = v.storage.as_any().downcast_ref::<GpuStorage>().ok_or_else(|| {
            Error::invalid(op, format!("operand is not a GPU storage of this backend ({:?})", v.storage))
        })?;
        if s.gpu().index() != self.index() {
            return Err(Error::DeviceMismatch { op, lhs: self.plies_device(), rhs: s.gpu().plies_device() });
        }
        Ok(s)
    }

    /// f32 or i32, or the CPU-only f64 error naming the op.
    pub(crate) fn supported(&self, op: &'static str, dtype: DType) -> Result<()> {
        if dtype == DType::F64 {
            return Err(Error::UnsupportedDType { op, dtype, device: self.plies_device() });
        }
        Ok(())
    }

    pub(crate) fn float_only(&self, op: &'static str, dtype: DType) -> Result<()> {
        if dtype != DType::F32 {
            return Err(Error::UnsupportedDType { op, dtype, device: self.plies_device() });
        }
        Ok(())
    }

    /// A fresh output of `len` elements.
    pub(crate) fn output(&self, op: &'static str, len: usize, dtype: DType) -> Result<GpuStorage> {
        self.supported(op, dtype)?;
        let (buffer, class) = self.alloc(op, len, false)?;
        Ok(GpuStorage::new(self.arc(), buffer, class, len, dtype))
    }

    /// The view as a dense run of elements, copied on the device when it is strided.
    pub(crate) fn dense<'a>(&self, op: &'static str, v: View<'a>) -> Result<Dense<'a>> {
        let s = self.storage_of(op, v)?;
        if v.layout.is_contiguous() {
            return Ok(Dense::Borrowed(s, v.layout.offset()));
        }
        Ok(Dense::Owned(self.copy_strided(op, v)?))
    }

    /// A contiguous copy of any view (bit patterns, so f32 and i32 alike).
    pub(crate) fn copy_strided(&self, op: &'static str, v: View) -> Result<GpuStorage> {
        let s = self.storage_of(op, v)?;
        let n = v.layout.elem_count();
        let out = self.output(op, n, v.dtype())?;
        let p = Params::new(n).views(&[v.layout]);
        self.run(
            &Kernel::new(Family::Copy, "copy_strided"),
            &p,
            &[(1, s.buffer()), (2, out.buffer())],
            [self.groups(n), 1, 1],
        )?;
        Ok(out)
    }
}

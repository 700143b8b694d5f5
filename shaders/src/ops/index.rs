//! index_select / gather read through one gather kernel; index_add / scatter_add copy the
//! base and then add into it with atomics. A 1-d index for index_select/index_add is seen
//! as an index view over the full shape with stride 0 on every other axis. Bad indices are
//! reported by the kernels and surface as errors at the next readback.

use crate::gpu::GpuBackend;
use crate::kernels::{Family, Kernel};
use crate::params::Params;
use crate::storage::GpuStorage;
use plies_core::backend::View;
use plies_core::{DType, Error, Result, Shape};

const INDEX_SELECT: u32 = 1;
const INDEX_ADD: u32 = 2;
const GATHER: u32 = 3;
const SCATTER_ADD: u32 = 4;

/// The index view's strides over `dims`: a 1-d index only moves along `axis`.
fn index_strides(idx: View, rank: usize, axis: usize) -> Vec<usize> {
    if idx.layout.rank() == rank {
        return idx.layout.strides().to_vec();
    }
    let mut s = vec![0; rank];
    s[axis] = idx.layout.strides()[0];
    s
}

impl GpuBackend {
    fn check_index(&self, op: &'static str, idx: View) -> Result<()> {
        if idx.dtype() != DType::I32 {
            return Err(Error::invalid(op, format!("indices must be i32, got {}", idx.dtype())));
        }
        Ok(())
    }

    /// `out[c] = x[c with c[axis] = idx[c]]` over `dims`.
    fn gather_into(
        &self,
        code: u32,
        op: &'static str,
        x: View,
        axis: usize,
        idx: View,
        dims: &[usize],
    ) -> Result<GpuStorage> {
        self.supported(op, x.dtype())?;
        self.check_index(op, idx)?;
        let (sx, si) = (self.storage_of(op, x)?, self.storage_of(op, idx)?);
        let n: usize = dims.iter().product();
        let out = self.output(op, n, x.dtype())?;
        let istr = index_strides(idx, dims.len(), axis);
        let zeros = vec![0; dims.len()];
        let p = Params::new(n)
            .op(code)
            .layout(dims, &[x.layout.strides(), &istr, &zeros])
            .offset(0, x.layout.offset())
            .offset(1, idx.layout.offset())
            .extra(0, axis as u32)
            .extra(1, x.layout.dims()[axis] as u32);
        self.run_checked(
            &Kernel::new(Family::Index, "gather"),
            &p,
            &[(1, sx.buffer()), (2, si.buffer()), (3, out.buffer())],
            [self.groups(n), 1, 1],
        )?;
        Ok(out)
    }

    /// `out = base; out[c with c[axis] = idx[c]] += src[c]` over src's dims.
    fn scatter_from(
        &self,
        code: u32,
        op: &'static str,
        base: View,
        axis: usize,
        idx: View,
        src: View,
    ) -> Result<GpuStorage> {
        self.supported(op, base.dtype())?;
        self.check_index(op, idx)?;
        if base.dtype() != src.dtype() {
            return Err(Error::DTypeMismatch { op, lhs: base.dtype(), rhs: src.dtype() });
        }
        let (ss, si) = (self.storage_of(op, src)?, self.storage_of(op, idx)?);
        let out = self.copy_strided(op, base)?;
        let dims = src.layout.dims();
        let n = src.layout.elem_count();
        let istr = index_strides(idx, dims.len(), axis);
        let ostr = Shape::from(base.layout.dims()).contiguous_strides();
        let p = Params::new(n)
            .op(code)
            .layout(dims, &[src.layout.strides(), &istr, &ostr])
            .offset(0, src.layout.offset())
            .offset(1, idx.layout.offset())
            .extra(0, axis as u32)
            .extra(1, base.layout.dims()[axis] as u32);
        let (entry, acc, vals) = match base.dtype() {
            DType::F32 => ("scatter_f32", 4, 6),
            _ => ("scatter_i32", 5, 7),
        };
        self.run_checked(
            &Kernel::new(Family::Index, entry),
            &p,
            &[(2, si.buffer()), (acc, out.buffer()), (vals, ss.buffer())],
            [self.groups(n), 1, 1],
        )?;
        Ok(out)
    }

    pub(crate) fn index_select_view(&self, x: View, axis: usize, idx: View) -> Result<GpuStorage> {
        let mut dims = x.layout.dims().to_vec();
        dims[axis] = idx.layout.elem_count();
        self.gather_into(INDEX_SELECT, "index_select", x, axis, idx, &dims)
    }

    pub(crate) fn gather_view(&self, x: View, axis: usize, idx: View) -> Result<GpuStorage> {
        let dims = idx.layout.dims().to_vec();
        self.gather_into(GATHER, "gather", x, axis, idx, &dims)
    }

    pub(crate) fn index_add_view(&self, base: View, axis: usize, idx: View, src: View) -> Result<GpuStorage> {
        self.scatter_from(INDEX_ADD, "index_add", base, axis, idx, src)
    }

    pub(crate) fn scatter_add_view(&self, base: View, axis: usize, idx: View, src: View) -> Result<GpuStorage> {
        self.scatter_from(SCATTER_ADD, "scatter_add", base, axis, idx, src)
    }
}

//! `impl Backend for GpuBackend`: the trait's ops, mapped onto the kernel families.

use crate::gpu::GpuBackend;
use plies_core::backend::{
    AdamWStep, CrossEntropyOpts, MemoryStats, NormGradInputs, NormGrads, NormOut, Storage, StorageBox, View,
};
use plies_core::cpu::CpuStorage;
use plies_core::{Backend, BinaryOp, DType, Device, Distribution, Layout, NormKind, ReduceOp, Result, UnaryOp};

fn boxed(s: crate::storage::GpuStorage) -> StorageBox {
    Box::new(s)
}

impl Backend for GpuBackend {
    fn device(&self) -> Device {
        self.plies_device()
    }

    fn name(&self) -> String {
        self.description().to_string()
    }

    fn memory(&self) -> MemoryStats {
        let s = self.pool_stats();
        MemoryStats { live: s.live, cached: s.cached, peak: s.peak }
    }

    fn synchronize(&self) -> Result<()> {
        self.sync()
    }

    fn upload(&self, data: &CpuStorage) -> Result<StorageBox> {
        self.upload_data(data)
    }

    fn full(&self, len: usize, dtype: DType, value: f64) -> Result<StorageBox> {
        Ok(boxed(self.fill(len, dtype, value)?))
    }

    fn random(&self, len: usize, dtype: DType, dist: Distribution, key: u64) -> Result<StorageBox> {
        Ok(boxed(self.random_fill(len, dtype, dist, key)?))
    }

    fn download(&self, x: View) -> Result<CpuStorage> {
        self.download_view(x)
    }

    fn copy(&self, x: View) -> Result<StorageBox> {
        Ok(boxed(self.copy_strided("copy", x)?))
    }

    fn copy_into(&self, src: View, dst: &mut dyn Storage, dst_layout: &Layout) -> Result<()> {
        self.copy_into_view(src, dst, dst_layout)
    }

    fn cast(&self, x: View, dtype: DType) -> Result<StorageBox> {
        Ok(boxed(self.cast_view(x, dtype)?))
    }

    fn unary(&self, op: UnaryOp, x: View) -> Result<StorageBox> {
        Ok(boxed(self.unary_view(op, x)?))
    }

    fn unary_grad(&self, op: UnaryOp, x: View, grad: View) -> Result<StorageBox> {
        Ok(boxed(self.unary_grad_view(op, x, grad)?))
    }

    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<StorageBox> {
        Ok(boxed(self.binary_view(op, lhs, rhs)?))
    }

    fn where_cond(&self, cond: View, on_true: View, on_false: View) -> Result<StorageBox> {
        Ok(boxed(self.where_view(cond, on_true, on_false)?))
    }

    fn reduce(&self, op: ReduceOp, x: View, axes: &[usize]) -> Result<StorageBox> {
        Ok(boxed(self.reduce_view(op, x, axes)?))
    }

    fn matmul(&self, lhs: View, rhs: View) -> Result<StorageBox> {
        Ok(boxed(self.matmul_view(lhs, rhs)?))
    }

    fn softmax(&self, x: View, log: bool) -> Result<StorageBox> {
        Ok(boxed(self.softmax_view(x, log)?))
    }

    fn softmax_grad(&self, y: View, grad: View, log: bool) -> Result<StorageBox> {
        Ok(boxed(self.softmax_grad_view(y, grad, log)?))
    }

    fn norm(&self, kind: NormKind, x: View, weight: Option<View>, bias: Option<View>, eps: f64) -> Result<NormOut> {
        self.norm_view(kind, x, weight, bias, eps)
    }

    fn norm_grad(&self, inputs: NormGradInputs<'_>) -> Result<NormGrads> {
        self.norm_grad_view(inputs)
    }

    fn cross_entropy(&self, logits: View, targets: View, opts: CrossEntropyOpts) -> Result<(StorageBox, StorageBox)> {
        let (loss, lse) = self.cross_entropy_view(logits, targets, opts)?;
        Ok((boxed(loss), boxed(lse)))
    }

    fn cross_entropy_grad(
        &self,
        logits: View,
        targets: View,
        lse: View,
        grad: View,
        opts: CrossEntropyOpts,
    ) -> Result<StorageBox> {
        Ok(boxed(self.cross_entropy_grad_view(logits, targets, lse, grad, opts)?))
    }

    fn index_select(&self, x: View, axis: usize, idx: View) -> Result<StorageBox> {
        Ok(boxed(self.index_select_view(x, axis, idx)?))
    }

    fn index_add(&self, base: View, axis: usize, idx: View, src: View) -> Result<StorageBox> {
        Ok(boxed(self.index_add_view(base, axis, idx, src)?))
    }

    fn gather(&self, x: View, axis: usize, idx: View) -> Result<StorageBox> {
        Ok(boxed(self.gather_view(x, axis, idx)?))
    }

    fn scatter_add(&self, base: View, axis: usize, idx: View, src: View) -> Result<StorageBox> {
        Ok(boxed(self.scatter_add_view(base, axis, idx, src)?))
    }

    fn adamw(
        &self,
        param: View,
        grad: View,
        m: View,
        v: View,
        hp: AdamWStep,
    ) -> Result<(StorageBox, StorageBox, StorageBox)> {
        let (p, m, v) = self.adamw_view(param, grad, m, v, hp)?;
        Ok((boxed(p), boxed(m), boxed(v)))
    }
}

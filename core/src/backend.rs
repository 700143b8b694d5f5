//! The seam between the tensor API and the kernels. A `Storage` is a device buffer; a
//! `Backend` runs every primitive op on views of storages and returns new, contiguous
//! storages. The CPU backend lives in this crate; the wgpu backend (plies-shaders)
//! registers itself through [`register_gpu`], so the tensor API never changes with the
//! device and one conformance suite can run against every backend.
//!
//! Contract for every op: inputs are arbitrary strided views (broadcast dims have stride
//! 0); outputs are freshly allocated and contiguous in row-major order of the output shape.
//! Shape checking happens in `Array` before a backend is called, so backends may assume
//! the shapes agree.

use crate::cpu::CpuStorage;
use crate::{BinaryOp, ReduceOp, UnaryOp};
use crate::{DType, Device, Distribution, Layout, NormKind, Result};
use std::any::Any;
use std::fmt::Debug;
use std::sync::{Arc, OnceLock};

pub type StorageBox = Box<dyn Storage>;

/// A buffer of elements on some device.
pub trait Storage: Send + Sync + Debug + Any {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn dtype(&self) -> DType;
    /// Number of elements.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The backend that owns this buffer and runs ops on it.
    fn backend(&self) -> Arc<dyn Backend>;
}

/// A storage seen through a layout: the input of every op.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub storage: &'a dyn Storage,
    pub layout: &'a Layout,
}

impl<'a> View<'a> {
    pub fn new(storage: &'a dyn Storage, layout: &'a Layout) -> Self {
        View { storage, layout }
    }
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }
    pub fn dims(&self) -> &'a [usize] {
        self.layout.dims()
    }
}

/// The outputs of a fused normalisation: `y`, plus what backward needs.
pub struct NormOut {
    pub y: StorageBox,
    /// Per-row mean (LayerNorm only), shape = rows.
    pub mean: Option<StorageBox>,
    /// Per-row reciprocal standard deviation, shape = rows.
    pub rstd: StorageBox,
}

/// What the backward of a fused normalisation reads: the forward's input, weight and saved
/// statistics, and the upstream gradient.
#[derive(Clone, Copy)]
pub struct NormGradInputs<'a> {
    pub kind: NormKind,
    pub x: View<'a>,
    pub weight: Option<View<'a>>,
    pub has_bias: bool,
    /// Per-row mean (LayerNorm only).
    pub mean: Option<View<'a>>,
    pub rstd: View<'a>,
    pub grad: View<'a>,
}

/// Gradients of a fused normalisation.
pub struct NormGrads {
    pub dx: StorageBox,
    pub dweight: Option<StorageBox>,
    pub dbias: Option<StorageBox>,
}

/// Options of the fused cross-entropy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossEntropyOpts {
    /// Rows whose target equals this contribute 0 loss and 0 gradient.
    pub ignore_index: i64,
    /// Mixes the one-hot target with the uniform distribution (PyTorch semantics).
    pub label_smoothing: f64,
}

impl Default for CrossEntropyOpts {
    fn default() -> Self {
        CrossEntropyOpts { ignore_index: -100, label_smoothing: 0.0 }
    }
}

/// Hyper-parameters of one fused AdamW update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// The 1-based step count of this parameter, for bias correction.
    pub step: u64,
}

/// Memory held by a backend, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes in storages that are alive now.
    pub live: u64,
    /// Bytes kept in a pool for reuse.
    pub cached: u64,
    /// The largest `live` seen.
    pub peak: u64,
}

/// The kernels of one device. Every method allocates its outputs on this device.
pub trait Backend: Send + Sync + Debug {
    fn device(&self) -> Device;
    /// A human-readable description, e.g. the adapter name.
    fn name(&self) -> String;
    fn memory(&self) -> MemoryStats;
    /// Wait until all queued work is done; surfaces asynchronous device errors.
    fn synchronize(&self) -> Result<()>;

    // === Creation and transfer ===
    fn upload(&self, data: &CpuStorage) -> Result<StorageBox>;
    fn full(&self, len: usize, dtype: DType, value: f64) -> Result<StorageBox>;
    /// Fill from a counter-based generator: element i is a pure function of (key, i), so
    /// every backend draws the same numbers for the same key.
    fn random(&self, len: usize, dtype: DType, dist: Distribution, key: u64) -> Result<StorageBox>;
    /// Read a view back to the host, contiguous in the view's row-major order.
    fn download(&self, x: View) -> Result<CpuStorage>;

    // === Layout ===
    fn copy(&self, x: View) -> Result<StorageBox>;
    /// Write `src` into the elements of `dst` that `dst_layout` selects.
    fn copy_into(&self, src: View, dst: &mut dyn Storage, dst_layout: &Layout) -> Result<()>;
    fn cast(&self, x: View, dtype: DType) -> Result<StorageBox>;

    // === Elementwise ===
    fn unary(&self, op: UnaryOp, x: View) -> Result<StorageBox>;
    /// `grad * op'(x)`, with the derivative written beside the forward in each backend.
    fn unary_grad(&self, op: UnaryOp, x: View, grad: View) -> Result<StorageBox>;
    /// Both views have the output shape (broadcasting is done with stride-0 layouts).
    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<StorageBox>;
    /// `cond != 0 ? on_true : on_false`; all three views have the output shape.
    fn where_cond(&self, cond: View, on_true: View, on_false: View) -> Result<StorageBox>;

    // === Reductions ===
    /// Reduce over `axes` (sorted, unique); the output keeps them as size-1 dims.
    fn reduce(&self, op: ReduceOp, x: View, axes: &[usize]) -> Result<StorageBox>;

    // === Matmul ===
    /// `[..., m, k] x [..., k, n] -> [..., m, n]`; batch dims already broadcast to match.
    fn matmul(&self, lhs: View, rhs: View) -> Result<StorageBox>;

    // === Fused ops over the last axis ===
    fn softmax(&self, x: View, log: bool) -> Result<StorageBox>;
    /// Gradient of (log_)softmax given its output `y` and the upstream gradient.
    fn softmax_grad(&self, y: View, grad: View, log: bool) -> Result<StorageBox>;
    fn norm(&self, kind: NormKind, x: View, weight: Option<View>, bias: Option<View>, eps: f64) -> Result<NormOut>;
    fn norm_grad(&self, inputs: NormGradInputs<'_>) -> Result<NormGrads>;
    /// Per-row loss `[n]` and log-sum-exp `[n]` of logits `[n, c]` against `I32` targets `[n]`.
    fn cross_entropy(&self, logits: View, targets: View, opts: CrossEntropyOpts) -> Result<(StorageBox, StorageBox)>;
    /// `d loss_i / d logits` scaled by `grad[i]`, given the saved log-sum-exp.
    fn cross_entropy_grad(
        &self,
        logits: View,
        targets: View,
        lse: View,
        grad: View,
        opts: CrossEntropyOpts,
    ) -> Result<StorageBox>;

    // === Indexing ===
    /// `out[.., i, ..] = x[.., idx[i], ..]` along `axis`; `idx` is a 1-d `I32` view.
    fn index_select(&self, x: View, axis: usize, idx: View) -> Result<StorageBox>;
    /// `out = base; out[.., idx[i], ..] += src[.., i, ..]` along `axis`.
    fn index_add(&self, base: View, axis: usize, idx: View, src: View) -> Result<StorageBox>;
    /// `out[i][j][k] = x[i][idx[i][j][k]][k]` (for axis 1); `idx` has the output shape.
    fn gather(&self, x: View, axis: usize, idx: View) -> Result<StorageBox>;
    /// `out = base; out[i][idx[i][j][k]][k] += src[i][j][k]` (for axis 1).
    fn scatter_add(&self, base: View, axis: usize, idx: View, src: View) -> Result<StorageBox>;

    // === Optimizer ===
    /// One AdamW update; returns (param, m, v). All four inputs are contiguous and same-shaped.
    fn adamw(
        &self,
        param: View,
        grad: View,
        m: View,
        v: View,
        hp: AdamWStep,
    ) -> Result<(StorageBox, StorageBox, StorageBox)>;
}

/// Constructor for GPU backends, installed by the crate that provides them.
pub type GpuFactory = fn(usize) -> Result<Arc<dyn Backend>>;

static GPU_FACTORY: OnceLock<GpuFactory> = OnceLock::new();

/// Install the GPU backend. The facade crate `plies` does this on first use of a GPU device.
pub fn register_gpu(factory: GpuFactory) {
    let _ = GPU_FACTORY.set(factory);
}

/// The backend of a device: the CPU backend, or the registered GPU backend.
pub fn backend(device: Device) -> Result<Arc<dyn Backend>> {
    match device {
        Device::Cpu => Ok(crate::cpu::CpuBackend::shared()),
        Device::Gpu(i) => match GPU_FACTORY.get() {
            Some(f) => f(i),
            None => Err(crate::Error::NoDevice {
                device,
                msg: "no GPU backend is registered (call plies::init(), or plies_shaders::register())".into(),
            }),
        },
    }
}

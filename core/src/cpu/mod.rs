//! The native CPU backend: generic kernels over f32/f64 (i32 where it makes sense),
//! rayon across cores for large work, f32 matmul through our own AVX2 kernel (`sgemm`),
//! the rest through `gemm`.

mod alloc;
mod elementwise;
mod fused;
mod index;
mod matmul;
mod reduce;
#[cfg(target_arch = "x86_64")]
mod sgemm;
mod simd;
pub(crate) mod strided;

use crate::backend::{AdamWStep, CrossEntropyOpts, MemoryStats, NormGrads, NormOut, Storage, StorageBox, View};
use crate::{
    layout, rng, Backend, BinaryOp, DType, Device, Distribution, Element, Error, FloatElement, Layout, NormKind,
    ReduceOp, Result, UnaryOp,
};
use std::any::Any;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use strided::{build_vec, contiguous, map1, map1_runs, map2_runs, map3};

/// Host memory holding a tensor's elements.
#[derive(Clone, Debug, PartialEq)]
pub enum CpuData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
}

/// A CPU buffer. Live bytes are counted so tests can check that backward frees memory.
#[derive(Debug, PartialEq)]
pub struct CpuStorage {
    data: CpuData,
}

static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

impl CpuData {
    pub fn dtype(&self) -> DType {
        match self {
            CpuData::F32(_) => DType::F32,
            CpuData::F64(_) => DType::F64,
            CpuData::I32(_) => DType::I32,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            CpuData::F32(v) => v.len(),
            CpuData::F64(v) => v.len(),
            CpuData::I32(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn bytes(&self) -> u64 {
        (self.len() * self.dtype().size_in_bytes()) as u64
    }
}

impl CpuStorage {
    pub fn new(data: CpuData) -> Self {
        let live = LIVE.fetch_add(data.bytes(), Ordering::Relaxed) + data.bytes();
        PEAK.fetch_max(live, Ordering::Relaxed);
        CpuStorage { data }
    }

    pub fn from_vec<T: Element>(v: Vec<T>) -> Self {
        Self::new(T::wrap(v))
    }

    pub fn data(&self) -> &CpuData {
        &self.data
    }

    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        T::slice(&self.data)
    }

    /// The elements as a Vec of `T`, converting numerically from the stored dtype.
    pub fn to_vec<T: Element>(&self) -> Vec<T> {
        match &self.data {
            CpuData::F32(v) => v.iter().map(|&x| T::from_f64(x as f64)).collect(),
            CpuData::F64(v) => v.iter().map(|&x| T::from_f64(x)).collect(),
            CpuData::I32(v) => v.iter().map(|&x| T::from_f64(x as f64)).collect(),
        }
    }

    pub fn into_data(mut self) -> CpuData {
        let data = std::mem::replace(&mut self.data, CpuData::I32(Vec::new()));
        LIVE.fetch_sub(data.bytes(), Ordering::Relaxed);
        data
    }
}

impl Clone for CpuStorage {
    fn clone(&self) -> Self {
        CpuStorage::new(self.data.clone())
    }
}

impl Drop for CpuStorage {
    fn drop(&mut self) {
        LIVE.fetch_sub(self.data.bytes(), Ordering::Relaxed);
    }
}

impl Storage for CpuStorage {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn dtype(&self) -> DType {
        self.data.dtype()
    }
    fn len(&self) -> usize {
        self.data.len()
    }
    fn backend(&self) -> Arc<dyn Backend> {
        CpuBackend::shared()
    }
}

/// The CPU backend (stateless; one shared instance).
#[derive(Debug, Default)]
pub struct CpuBackend;

impl CpuBackend {
    pub fn shared() -> Arc<dyn Backend> {
        static SHARED: OnceLock<Arc<dyn Backend>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                alloc::tune_heap();
                Arc::new(CpuBackend)
            })
            .clone()
    }
}

/// Bytes held by live CPU storages.
pub fn live_bytes() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

fn cpu<'a>(v: View<'a>) -> &'a CpuData {
    // Views reach the CPU backend only through storages it created (Array checks devices).
    &v.storage.as_any().downcast_ref::<CpuStorage>().expect("a CPU storage").data
}

fn boxed(d: CpuData) -> StorageBox {
    Box::new(CpuStorage::new(d))
}

fn unsupported(op: &'static str, dtype: DType) -> Error {
    Error::UnsupportedDType { op, dtype, device: Device::Cpu }
}

/// Run a float kernel on f32 or f64 data: `float!(data, |v| expr)` binds `v` to the slice
/// and wraps the resulting Vec back into `CpuData`.
macro_rules! float {
    ($op:expr, $d:expr, |$v:ident| $body:expr) => {
        match $d {
            CpuData::F32($v) => CpuData::F32($body),
            CpuData::F64($v) => CpuData::F64($body),
            other => return Err(unsupported($op, other.dtype())),
        }
    };
}

/// The same for two operands of one float dtype.
macro_rules! float2 {
    ($op:expr, $a:expr, $b:expr, |$x:ident, $y:ident| $body:expr) => {
        match ($a, $b) {
            (CpuData::F32($x), CpuData::F32($y)) => CpuData::F32($body),
            (CpuData::F64($x), CpuData::F64($y)) => CpuData::F64($body),
            (a, b) if a.dtype() != b.dtype() => {
                return Err(Error::DTypeMismatch { op: $op, lhs: a.dtype(), rhs: b.dtype() })
            }
            (a, _) => return Err(unsupported($op, a.dtype())),
        }
    };
}

fn indices(op: &'static str, v: View) -> Result<Vec<i32>> {
    match cpu(v) {
        CpuData::I32(d) => Ok(contiguous(d, v.layout).into_owned()),
        other => Err(Error::invalid(op, format!("indices must be i32, got {}", other.dtype()))),
    }
}

fn rows_cols(l: &Layout) -> usize {
    l.dims().last().copied().unwrap_or(1)
}

impl Backend for CpuBackend {
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }
    fn memory(&self) -> MemoryStats {
        MemoryStats { live: live_bytes(), cached: 0, peak: PEAK.load(Ordering::Relaxed) }
    }
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn upload(&self, data: &CpuStorage) -> Result<StorageBox> {
        Ok(Box::new(data.clone()))
    }

    fn full(&self, len: usize, dtype: DType, value: f64) -> Result<StorageBox> {
        Ok(boxed(match dtype {
            DType::F32 => CpuData::F32(vec![value as f32; len]),
            DType::F64 => CpuData::F64(vec![value; len]),
            DType::I32 => CpuData::I32(vec![value as i32; len]),
        }))
    }

    fn random(&self, len: usize, dtype: DType, dist: Distribution, key: u64) -> Result<StorageBox> {
        if len > u32::MAX as usize / 2 {
            return Err(Error::TooLarge {
                op: "random",
                bytes: len as u64,
                limit: u32::MAX as u64 / 2,
                what: "element count of one draw",
            });
        }
        let sample = move |i: usize| -> f64 {
            let i = i as u32;
            match dist {
                Distribution::Uniform { lo, hi } => lo + (hi - lo) * rng::unit(key, i),
                Distribution::Bernoulli { p } => (rng::unit(key, i) < p) as u8 as f64,
                Distribution::Normal { mean, std } => {
                    // Box-Muller on the pair (2i, 2i+1).
                    let (u1, u2) = (rng::unit(key, 2 * i), rng::unit(key, 2 * i + 1));
                    mean + std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
                }
            }
        };
        Ok(boxed(match dtype {
            DType::F32 => CpuData::F32(build_vec(len, |s, o| {
                o.iter_mut().enumerate().for_each(|(i, o)| {
                    o.write(sample(s + i) as f32);
                })
            })),
            DType::F64 => CpuData::F64(build_vec(len, |s, o| {
                o.iter_mut().enumerate().for_each(|(i, o)| {
                    o.write(sample(s + i));
                })
            })),
            DType::I32 => return Err(unsupported("random", dtype)),
        }))
    }

    fn download(&self, x: View) -> Result<CpuStorage> {
        Ok(CpuStorage::new(match cpu(x) {
            CpuData::F32(v) => CpuData::F32(contiguous(v, x.layout).into_owned()),
            CpuData::F64(v) => CpuData::F64(contiguous(v, x.layout).into_owned()),
            CpuData::I32(v) => CpuData::I32(contiguous(v, x.layout).into_owned()),
        }))
    }

    fn copy(&self, x: View) -> Result<StorageBox> {
        Ok(Box::new(self.download(x)?))
    }

    fn copy_into(&self, src: View, dst: &mut dyn Storage, dst_layout: &Layout) -> Result<()> {
        let dst = &mut dst.as_any_mut().downcast_mut::<CpuStorage>().expect("a CPU storage").data;
        fn put<T: Copy + Send + Sync>(d: &mut [T], dl: &Layout, s: &[T], sl: &Layout) {
            // Copy run by run (whole rows at once where both sides are dense).
            let c = layout::Coalesced::new(&[dl, sl]);
            let (sd, ss) = (c.inner_stride(0), c.inner_stride(1));
            strided::for_each_segment(&c, 0, dl.elem_count(), |_, len, st| {
                if sd == 1 && ss == 1 {
                    d[st[0]..st[0] + len].copy_from_slice(&s[st[1]..st[1] + len]);
                } else {
                    for i in 0..len {
                        d[st[0] + i * sd] = s[st[1] + i * ss];
                    }
                }
            });
        }
        match (dst, cpu(src)) {
            (CpuData::F32(d), CpuData::F32(s)) => put(d, dst_layout, s, src.layout),
            (CpuData::F64(d), CpuData::F64(s)) => put(d, dst_layout, s, src.layout),
            (CpuData::I32(d), CpuData::I32(s)) => put(d, dst_layout, s, src.layout),
            (d, s) => return Err(Error::DTypeMismatch { op: "copy_into", lhs: d.dtype(), rhs: s.dtype() }),
        }
        Ok(())
    }

    fn cast(&self, x: View, dtype: DType) -> Result<StorageBox> {
        fn conv<T: Element + Sync, U: Element + Send>(v: &[T], l: &Layout) -> CpuData {
            U::wrap(map1(v, l, |x| U::from_f64(x.as_f64())))
        }
        Ok(boxed(match (cpu(x), dtype) {
            (CpuData::F32(v), DType::F32) => CpuData::F32(contiguous(v, x.layout).into_owned()),
            (CpuData::F32(v), DType::F64) => conv::<f32, f64>(v, x.layout),
            (CpuData::F32(v), DType::I32) => conv::<f32, i32>(v, x.layout),
            (CpuData::F64(v), DType::F32) => conv::<f64, f32>(v, x.layout),
            (CpuData::F64(v), DType::F64) => CpuData::F64(contiguous(v, x.layout).into_owned()),
            (CpuData::F64(v), DType::I32) => conv::<f64, i32>(v, x.layout),
            (CpuData::I32(v), DType::F32) => conv::<i32, f32>(v, x.layout),
            (CpuData::I32(v), DType::F64) => conv::<i32, f64>(v, x.layout),
            (CpuData::I32(v), DType::I32) => CpuData::I32(contiguous(v, x.layout).into_owned()),
        }))
    }

    fn unary(&self, op: UnaryOp, x: View) -> Result<StorageBox> {
        if let (CpuData::I32(v), UnaryOp::Neg | UnaryOp::Abs) = (cpu(x), op) {
            let neg = op == UnaryOp::Neg;
            return Ok(boxed(CpuData::I32(map1(
                v,
                x.layout,
                |a: i32| if neg { a.wrapping_neg() } else { a.wrapping_abs() },
            ))));
        }
        Ok(boxed(float!(op.name(), cpu(x), |v| map1_runs(v, x.layout, |x, o| simd::unary_run(op, x, o)))))
    }

    fn unary_grad(&self, op: UnaryOp, x: View, grad: View) -> Result<StorageBox> {
        Ok(boxed(float2!(op.name(), cpu(x), cpu(grad), |a, g| map2_runs(a, x.layout, g, grad.layout, |x, g, o| {
            simd::unary_grad_run(op, x, g, o)
        }))))
    }

    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<StorageBox> {
        if let (CpuData::I32(a), CpuData::I32(b)) = (cpu(lhs), cpu(rhs)) {
            return Ok(boxed(CpuData::I32(elementwise::binary_map_i(op, a, lhs.layout, b, rhs.layout))));
        }
        Ok(boxed(float2!(op.name(), cpu(lhs), cpu(rhs), |a, b| elementwise::binary_map(
            op, a, lhs.layout, b, rhs.layout
        ))))
    }

    fn where_cond(&self, cond: View, on_true: View, on_false: View) -> Result<StorageBox> {
        fn pick<T: Copy + Send + Sync>(c: &CpuData, cl: &Layout, t: &[T], tl: &Layout, f: &[T], fl: &Layout) -> Vec<T> {
            match c {
                CpuData::F32(c) => map3(c, cl, t, tl, f, fl, |c, t, f| if c != 0.0 { t } else { f }),
                CpuData::F64(c) => map3(c, cl, t, tl, f, fl, |c, t, f| if c != 0.0 { t } else { f }),
                CpuData::I32(c) => map3(c, cl, t, tl, f, fl, |c, t, f| if c != 0 { t } else { f }),
            }
        }
        let (c, cl, tl, fl) = (cpu(cond), cond.layout, on_true.layout, on_false.layout);
        Ok(boxed(match (cpu(on_true), cpu(on_false)) {
            (CpuData::F32(t), CpuData::F32(f)) => CpuData::F32(pick(c, cl, t, tl, f, fl)),
            (CpuData::F64(t), CpuData::F64(f)) => CpuData::F64(pick(c, cl, t, tl, f, fl)),
            (CpuData::I32(t), CpuData::I32(f)) => CpuData::I32(pick(c, cl, t, tl, f, fl)),
            (t, f) => return Err(Error::DTypeMismatch { op: "where", lhs: t.dtype(), rhs: f.dtype() }),
        }))
    }

    fn reduce(&self, op: ReduceOp, x: View, axes: &[usize]) -> Result<StorageBox> {
        let l = x.layout;
        if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) {
            let [axis] = axes else {
                return Err(Error::invalid(op.name(), format!("takes exactly one axis, got {axes:?}")));
            };
            if l.dims()[*axis] == 0 {
                return Err(Error::invalid(op.name(), "cannot reduce an empty axis"));
            }
            return Ok(boxed(CpuData::I32(match cpu(x) {
                CpuData::F32(v) => reduce::reduce_arg(op, v, l, *axis),
                CpuData::F64(v) => reduce::reduce_arg(op, v, l, *axis),
                CpuData::I32(v) => reduce::reduce_arg(op, v, l, *axis),
            })));
        }
        if let CpuData::I32(v) = cpu(x) {
            return Ok(boxed(CpuData::I32(reduce::reduce_int(op, v, l, axes))));
        }
        Ok(boxed(float!(op.name(), cpu(x), |v| reduce::reduce_float(op, v, l, axes))))
    }

    fn matmul(&self, lhs: View, rhs: View) -> Result<StorageBox> {
        Ok(boxed(float2!("matmul", cpu(lhs), cpu(rhs), |a, b| matmul::matmul(a, lhs.layout, b, rhs.layout))))
    }

    fn softmax(&self, x: View, log: bool) -> Result<StorageBox> {
        let cols = rows_cols(x.layout);
        Ok(boxed(float!("softmax", cpu(x), |v| fused::softmax(&contiguous(v, x.layout), cols, log))))
    }

    fn softmax_grad(&self, y: View, grad: View, log: bool) -> Result<StorageBox> {
        let cols = rows_cols(y.layout);
        Ok(boxed(float2!("softmax_grad", cpu(y), cpu(grad), |a, g| fused::softmax_grad(
            &contiguous(a, y.layout),
            &contiguous(g, grad.layout),
            cols,
            log
        ))))
    }

    fn norm(&self, kind: NormKind, x: View, weight: Option<View>, bias: Option<View>, eps: f64) -> Result<NormOut> {
        fn run<'a, T: simd::VecMath + Element>(
            kind: NormKind,
            x: View<'a>,
            w: Option<View<'a>>,
            b: Option<View<'a>>,
            eps: f64,
        ) -> Result<NormOut> {
            let get = |v: View<'a>| -> Result<Cow<'a, [T]>> {
                let s = T::slice(cpu(v)).ok_or(Error::DTypeMismatch { op: "norm", lhs: T::DTYPE, rhs: v.dtype() })?;
                Ok(contiguous(s, v.layout))
            };
            let xs = get(x)?;
            let (w, b) = (w.map(get).transpose()?, b.map(get).transpose()?);
            let (y, mean, rstd) = fused::norm(kind, &xs, rows_cols(x.layout), w.as_deref(), b.as_deref(), eps);
            Ok(NormOut { y: boxed(T::wrap(y)), mean: mean.map(|m| boxed(T::wrap(m))), rstd: boxed(T::wrap(rstd)) })
        }
        match x.dtype() {
            DType::F32 => run::<f32>(kind, x, weight, bias, eps),
            DType::F64 => run::<f64>(kind, x, weight, bias, eps),
            d => Err(unsupported("norm", d)),
        }
    }

    fn norm_grad(
        &self,
        kind: NormKind,
        x: View,
        weight: Option<View>,
        has_bias: bool,
        mean: Option<View>,
        rstd: View,
        grad: View,
    ) -> Result<NormGrads> {
        fn run<'a, T: FloatElement + Element>(
            kind: NormKind,
            x: View<'a>,
            w: Option<View<'a>>,
            has_bias: bool,
            mean: Option<View<'a>>,
            rstd: View<'a>,
            g: View<'a>,
        ) -> Result<NormGrads> {
            let get = |v: View<'a>| -> Result<Cow<'a, [T]>> {
                let s =
                    T::slice(cpu(v)).ok_or(Error::DTypeMismatch { op: "norm_grad", lhs: T::DTYPE, rhs: v.dtype() })?;
                Ok(contiguous(s, v.layout))
            };
            let (xs, gs, rs) = (get(x)?, get(g)?, get(rstd)?);
            let w = w.map(get).transpose()?;
            let m = mean.map(get).transpose()?;
            let (dx, dw, db) =
                fused::norm_grad(kind, &xs, rows_cols(x.layout), w.as_deref(), has_bias, m.as_deref(), &rs, &gs);
            Ok(NormGrads {
                dx: boxed(T::wrap(dx)),
                dweight: dw.map(|v| boxed(T::wrap(v))),
                dbias: db.map(|v| boxed(T::wrap(v))),
            })
        }
        match x.dtype() {
            DType::F32 => run::<f32>(kind, x, weight, has_bias, mean, rstd, grad),
            DType::F64 => run::<f64>(kind, x, weight, has_bias, mean, rstd, grad),
            d => Err(unsupported("norm_grad", d)),
        }
    }

    fn cross_entropy(&self, logits: View, targets: View, opts: CrossEntropyOpts) -> Result<(StorageBox, StorageBox)> {
        let t = indices("cross_entropy", targets)?;
        let c = rows_cols(logits.layout);
        Ok(match cpu(logits) {
            CpuData::F32(v) => {
                let (l, s) = fused::cross_entropy(&contiguous(v, logits.layout), c, &t, opts)?;
                (boxed(CpuData::F32(l)), boxed(CpuData::F32(s)))
            }
            CpuData::F64(v) => {
                let (l, s) = fused::cross_entropy(&contiguous(v, logits.layout), c, &t, opts)?;
                (boxed(CpuData::F64(l)), boxed(CpuData::F64(s)))
            }
            other => return Err(unsupported("cross_entropy", other.dtype())),
        })
    }

    fn cross_entropy_grad(
        &self,
        logits: View,
        targets: View,
        lse: View,
        grad: View,
        opts: CrossEntropyOpts,
    ) -> Result<StorageBox> {
        let t = indices("cross_entropy", targets)?;
        let c = rows_cols(logits.layout);
        let data = match (cpu(logits), cpu(lse), cpu(grad)) {
            (CpuData::F32(x), CpuData::F32(s), CpuData::F32(g)) => CpuData::F32(fused::cross_entropy_grad(
                &contiguous(x, logits.layout),
                c,
                &t,
                &contiguous(s, lse.layout),
                &contiguous(g, grad.layout),
                opts,
            )?),
            (CpuData::F64(x), CpuData::F64(s), CpuData::F64(g)) => CpuData::F64(fused::cross_entropy_grad(
                &contiguous(x, logits.layout),
                c,
                &t,
                &contiguous(s, lse.layout),
                &contiguous(g, grad.layout),
                opts,
            )?),
            (x, _, g) => return Err(Error::DTypeMismatch { op: "cross_entropy_grad", lhs: x.dtype(), rhs: g.dtype() }),
        };
        Ok(boxed(data))
    }

    fn index_select(&self, x: View, axis: usize, idx: View) -> Result<StorageBox> {
        let i = indices("index_select", idx)?;
        Ok(boxed(match cpu(x) {
            CpuData::F32(v) => CpuData::F32(index::index_select(v, x.layout, axis, &i)?),
            CpuData::F64(v) => CpuData::F64(index::index_select(v, x.layout, axis, &i)?),
            CpuData::I32(v) => CpuData::I32(index::index_select(v, x.layout, axis, &i)?),
        }))
    }

    fn index_add(&self, base: View, axis: usize, idx: View, src: View) -> Result<StorageBox> {
        let i = indices("index_add", idx)?;
        let (lb, ls) = (base.layout, src.layout);
        Ok(boxed(match (cpu(base), cpu(src)) {
            (CpuData::F32(b), CpuData::F32(s)) => CpuData::F32(index::index_add(b, lb, axis, &i, s, ls)?),
            (CpuData::F64(b), CpuData::F64(s)) => CpuData::F64(index::index_add(b, lb, axis, &i, s, ls)?),
            (CpuData::I32(b), CpuData::I32(s)) => CpuData::I32(index::index_add(b, lb, axis, &i, s, ls)?),
            (b, s) => return Err(Error::DTypeMismatch { op: "index_add", lhs: b.dtype(), rhs: s.dtype() }),
        }))
    }

    fn gather(&self, x: View, axis: usize, idx: View) -> Result<StorageBox> {
        let i = indices("gather", idx)?;
        let d = idx.dims();
        Ok(boxed(match cpu(x) {
            CpuData::F32(v) => CpuData::F32(index::gather(v, x.layout, axis, &i, d)?),
            CpuData::F64(v) => CpuData::F64(index::gather(v, x.layout, axis, &i, d)?),
            CpuData::I32(v) => CpuData::I32(index::gather(v, x.layout, axis, &i, d)?),
        }))
    }

    fn scatter_add(&self, base: View, axis: usize, idx: View, src: View) -> Result<StorageBox> {
        let i = indices("scatter_add", idx)?;
        let (lb, ls, d) = (base.layout, src.layout, idx.dims());
        Ok(boxed(match (cpu(base), cpu(src)) {
            (CpuData::F32(b), CpuData::F32(s)) => CpuData::F32(index::scatter_add(b, lb, axis, &i, d, s, ls)?),
            (CpuData::F64(b), CpuData::F64(s)) => CpuData::F64(index::scatter_add(b, lb, axis, &i, d, s, ls)?),
            (CpuData::I32(b), CpuData::I32(s)) => CpuData::I32(index::scatter_add(b, lb, axis, &i, d, s, ls)?),
            (b, s) => return Err(Error::DTypeMismatch { op: "scatter_add", lhs: b.dtype(), rhs: s.dtype() }),
        }))
    }

    fn adamw(
        &self,
        param: View,
        grad: View,
        m: View,
        v: View,
        hp: AdamWStep,
    ) -> Result<(StorageBox, StorageBox, StorageBox)> {
        macro_rules! run {
            ($var:ident, $t:ty) => {{
                fn get<'a>(x: View<'a>, p: DType) -> Result<std::borrow::Cow<'a, [$t]>> {
                    match cpu(x) {
                        CpuData::$var(d) => Ok(contiguous(d, x.layout)),
                        o => Err(Error::DTypeMismatch { op: "adamw", lhs: p, rhs: o.dtype() }),
                    }
                }
                let pd = param.dtype();
                let (p, g, m, v) = (get(param, pd)?, get(grad, pd)?, get(m, pd)?, get(v, pd)?);
                let (p, m, v) = fused::adamw(&p, &g, &m, &v, hp);
                (boxed(CpuData::$var(p)), boxed(CpuData::$var(m)), boxed(CpuData::$var(v)))
            }};
        }
        Ok(match param.dtype() {
            DType::F32 => run!(F32, f32),
            DType::F64 => run!(F64, f64),
            d => return Err(unsupported("adamw", d)),
        })
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

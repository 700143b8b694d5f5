//! `CpuBackend`: the `Backend` trait on host memory. Each method picks its kernel by dtype
//! through dispatch.rs and hands strided views to the kernel modules.

use super::dispatch::{any_dtype, data, data_mut, dense, float, last_dim, out, same_dtype};
use super::strided::{self, build_vec, map1, map1_runs, map2_runs, map3};
use super::{alloc, counters, elementwise, fused, index, matmul, reduce, simd, CpuStorage};
use crate::backend::{
    AdamWStep, CrossEntropyOpts, MemoryStats, NormGradInputs, NormGrads, NormOut, Storage, StorageBox, View,
};
use crate::{
    layout, rng, Backend, BinaryOp, DType, Device, Distribution, Element, Error, Layout, NormKind, ReduceOp, Result,
    UnaryOp,
};
use std::sync::{Arc, OnceLock};

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

/// Class labels and gather/scatter indices: i32, read contiguously.
fn indices(op: &'static str, v: View) -> Result<Vec<i32>> {
    match v.dtype() {
        DType::I32 => Ok(dense::<i32>(op, v)?.into_owned()),
        d => Err(Error::invalid(op, format!("indices must be i32, got {d}"))),
    }
}

impl Backend for CpuBackend {
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }
    fn memory(&self) -> MemoryStats {
        MemoryStats { live: counters::live_bytes(), cached: 0, peak: counters::peak_bytes() }
    }
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn upload(&self, data: &CpuStorage) -> Result<StorageBox> {
        Ok(Box::new(data.clone()))
    }

    fn full(&self, len: usize, dtype: DType, value: f64) -> Result<StorageBox> {
        any_dtype!("full", dtype, T => Ok(out(vec![T::from_f64(value); len])))
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
        float!("random", dtype, T => Ok(out(build_vec(len, |s, o| {
            o.iter_mut().enumerate().for_each(|(i, o)| {
                o.write(T::from_f64(sample(s + i)));
            })
        }))))
    }

    fn download(&self, x: View) -> Result<CpuStorage> {
        any_dtype!("download", x.dtype(), T => Ok(CpuStorage::from_vec(dense::<T>("download", x)?.into_owned())))
    }

    fn copy(&self, x: View) -> Result<StorageBox> {
        Ok(Box::new(self.download(x)?))
    }

    fn copy_into(&self, src: View, dst: &mut dyn Storage, dst_layout: &Layout) -> Result<()> {
        let dst = dst.as_any_mut().downcast_mut::<CpuStorage>().expect("a CPU storage").data_mut();
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
        any_dtype!("copy_into", src.dtype(), T => {
            put(data_mut::<T>("copy_into", dst)?, dst_layout, data::<T>("copy_into", src)?, src.layout);
            Ok(())
        })
    }

    fn cast(&self, x: View, dtype: DType) -> Result<StorageBox> {
        any_dtype!("cast", x.dtype(), S => {
            let v = data::<S>("cast", x)?;
            any_dtype!("cast", dtype, U => Ok(out(map1(v, x.layout, |a: S| U::from_f64(a.as_f64())))))
        })
    }

    fn unary(&self, op: UnaryOp, x: View) -> Result<StorageBox> {
        let name = op.name();
        if x.dtype() == DType::I32 && matches!(op, UnaryOp::Neg | UnaryOp::Abs) {
            let neg = op == UnaryOp::Neg;
            let f = move |a: i32| if neg { a.wrapping_neg() } else { a.wrapping_abs() };
            return Ok(out(map1(data::<i32>(name, x)?, x.layout, f)));
        }
        float!(name, x.dtype(), T => Ok(out(map1_runs(data::<T>(name, x)?, x.layout, |x, o| simd::unary_run(op, x, o)))))
    }

    fn unary_grad(&self, op: UnaryOp, x: View, grad: View) -> Result<StorageBox> {
        let name = op.name();
        same_dtype(name, x, grad)?;
        float!(name, x.dtype(), T => {
            let (a, g) = (data::<T>(name, x)?, data::<T>(name, grad)?);
            Ok(out(map2_runs(a, x.layout, g, grad.layout, |x, g, o| simd::unary_grad_run(op, x, g, o))))
        })
    }

    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<StorageBox> {
        let name = op.name();
        same_dtype(name, lhs, rhs)?;
        let (la, lb) = (lhs.layout, rhs.layout);
        if lhs.dtype() == DType::I32 {
            return Ok(out(elementwise::binary_map_i(op, data(name, lhs)?, la, data(name, rhs)?, lb)));
        }
        float!(name, lhs.dtype(), T => Ok(out(elementwise::binary_map::<T>(op, data(name, lhs)?, la, data(name, rhs)?, lb))))
    }

    fn where_cond(&self, cond: View, on_true: View, on_false: View) -> Result<StorageBox> {
        same_dtype("where", on_true, on_false)?;
        let (cl, tl, fl) = (cond.layout, on_true.layout, on_false.layout);
        any_dtype!("where", on_true.dtype(), T => {
            let (t, f) = (data::<T>("where", on_true)?, data::<T>("where", on_false)?);
            any_dtype!("where", cond.dtype(), C => {
                let c = data::<C>("where", cond)?;
                Ok(out(map3(c, cl, t, tl, f, fl, |c: C, t, f| if c.as_f64() != 0.0 { t } else { f })))
            })
        })
    }

    fn reduce(&self, op: ReduceOp, x: View, axes: &[usize]) -> Result<StorageBox> {
        let (l, name) = (x.layout, op.name());
        if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) {
            let [axis] = axes else {
                return Err(Error::invalid(name, format!("takes exactly one axis, got {axes:?}")));
            };
            if l.dims()[*axis] == 0 {
                return Err(Error::invalid(name, "cannot reduce an empty axis"));
            }
            return any_dtype!(name, x.dtype(), T => Ok(out(reduce::reduce_arg(op, data::<T>(name, x)?, l, *axis))));
        }
        if x.dtype() == DType::I32 {
            return Ok(out(reduce::reduce_int(op, data(name, x)?, l, axes)));
        }
        float!(name, x.dtype(), T => Ok(out(reduce::reduce_float::<T>(op, data(name, x)?, l, axes))))
    }

    fn matmul(&self, lhs: View, rhs: View) -> Result<StorageBox> {
        same_dtype("matmul", lhs, rhs)?;
        float!("matmul", lhs.dtype(), T => {
            let (a, b) = (data::<T>("matmul", lhs)?, data::<T>("matmul", rhs)?);
            Ok(out(matmul::matmul(a, lhs.layout, b, rhs.layout)))
        })
    }

    fn softmax(&self, x: View, log: bool) -> Result<StorageBox> {
        float!("softmax", x.dtype(), T => Ok(out(fused::softmax(&dense::<T>("softmax", x)?, last_dim(x), log))))
    }

    fn softmax_grad(&self, y: View, grad: View, log: bool) -> Result<StorageBox> {
        same_dtype("softmax_grad", y, grad)?;
        float!("softmax_grad", y.dtype(), T => {
            let (a, g) = (dense::<T>("softmax_grad", y)?, dense::<T>("softmax_grad", grad)?);
            Ok(out(fused::softmax_grad(&a, &g, last_dim(y), log)))
        })
    }

    fn norm(&self, kind: NormKind, x: View, weight: Option<View>, bias: Option<View>, eps: f64) -> Result<NormOut> {
        float!("norm", x.dtype(), T => {
            let get = |v| dense::<T>("norm", v);
            let (xs, w, b) = (get(x)?, weight.map(get).transpose()?, bias.map(get).transpose()?);
            let (y, mean, rstd) = fused::norm(kind, &xs, last_dim(x), w.as_deref(), b.as_deref(), eps);
            Ok(NormOut { y: out(y), mean: mean.map(out), rstd: out(rstd) })
        })
    }

    fn norm_grad(&self, a: NormGradInputs<'_>) -> Result<NormGrads> {
        let NormGradInputs { kind, x, weight, has_bias, mean, rstd, grad } = a;
        float!("norm_grad", x.dtype(), T => {
            let get = |v| dense::<T>("norm_grad", v);
            let (xs, gs, rs) = (get(x)?, get(grad)?, get(rstd)?);
            let (w, m) = (weight.map(get).transpose()?, mean.map(get).transpose()?);
            let (dx, dw, db) =
                fused::norm_grad(kind, &xs, last_dim(x), w.as_deref(), has_bias, m.as_deref(), &rs, &gs);
            Ok(NormGrads { dx: out(dx), dweight: dw.map(out), dbias: db.map(out) })
        })
    }

    fn cross_entropy(&self, logits: View, targets: View, opts: CrossEntropyOpts) -> Result<(StorageBox, StorageBox)> {
        let t = indices("cross_entropy", targets)?;
        float!("cross_entropy", logits.dtype(), T => {
            let x = dense::<T>("cross_entropy", logits)?;
            let (loss, lse) = fused::cross_entropy(&x, last_dim(logits), &t, opts)?;
            Ok((out(loss), out(lse)))
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
        same_dtype("cross_entropy_grad", logits, grad)?;
        float!("cross_entropy_grad", logits.dtype(), T => {
            let get = |v| dense::<T>("cross_entropy_grad", v);
            let (x, s, g) = (get(logits)?, get(lse)?, get(grad)?);
            Ok(out(fused::cross_entropy_grad(&x, last_dim(logits), &t, &s, &g, opts)?))
        })
    }

    fn index_select(&self, x: View, axis: usize, idx: View) -> Result<StorageBox> {
        let i = indices("index_select", idx)?;
        any_dtype!("index_select", x.dtype(), T => {
            Ok(out(index::index_select(data::<T>("index_select", x)?, x.layout, axis, &i)?))
        })
    }

    fn index_add(&self, base: View, axis: usize, idx: View, src: View) -> Result<StorageBox> {
        let i = indices("index_add", idx)?;
        same_dtype("index_add", base, src)?;
        any_dtype!("index_add", base.dtype(), T => {
            let (b, s) = (data::<T>("index_add", base)?, data::<T>("index_add", src)?);
            Ok(out(index::index_add(b, base.layout, axis, &i, s, src.layout)?))
        })
    }

    fn gather(&self, x: View, axis: usize, idx: View) -> Result<StorageBox> {
        let i = indices("gather", idx)?;
        any_dtype!("gather", x.dtype(), T => {
            Ok(out(index::gather(data::<T>("gather", x)?, x.layout, axis, &i, idx.dims())?))
        })
    }

    fn scatter_add(&self, base: View, axis: usize, idx: View, src: View) -> Result<StorageBox> {
        let i = indices("scatter_add", idx)?;
        same_dtype("scatter_add", base, src)?;
        any_dtype!("scatter_add", base.dtype(), T => {
            let (b, s) = (data::<T>("scatter_add", base)?, data::<T>("scatter_add", src)?);
            Ok(out(index::scatter_add(b, base.layout, axis, &i, idx.dims(), s, src.layout)?))
        })
    }

    fn adamw(
        &self,
        param: View,
        grad: View,
        m: View,
        v: View,
        hp: AdamWStep,
    ) -> Result<(StorageBox, StorageBox, StorageBox)> {
        float!("adamw", param.dtype(), T => {
            let get = |x| dense::<T>("adamw", x);
            let (p, g, m, v) = (get(param)?, get(grad)?, get(m)?, get(v)?);
            let (p, m, v) = fused::adamw(&p, &g, &m, &v, hp);
            Ok((out(p), out(m), out(v)))
        })
    }
}

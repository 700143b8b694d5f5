//! Constructors: from host data, constant fills, ranges and random draws.

use super::Array;
use crate::backend::backend;
use crate::cpu::CpuStorage;
use crate::{DType, Device, Distribution, Element, Error, Result, Shape};

impl Array {
    /// An array holding `data` in row-major order.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: impl Into<Shape>, device: Device) -> Result<Array> {
        let shape = shape.into();
        if data.len() != shape.elem_count() {
            return Err(Error::invalid(
                "from_vec",
                format!("{} elements given for shape {shape} ({} elements)", data.len(), shape.elem_count()),
            ));
        }
        let host = CpuStorage::from_vec(data);
        let storage = match device {
            Device::Cpu => Box::new(host),
            d => backend(d)?.upload(&host)?,
        };
        Ok(Array::from_storage(storage, shape))
    }

    pub fn from_slice<T: Element>(data: &[T], shape: impl Into<Shape>, device: Device) -> Result<Array> {
        Array::from_vec(data.to_vec(), shape, device)
    }

    /// A rank-0 array.
    pub fn scalar<T: Element>(v: T, device: Device) -> Result<Array> {
        Array::from_vec(vec![v], Shape::scalar(), device)
    }

    pub fn full(shape: impl Into<Shape>, value: f64, dtype: DType, device: Device) -> Result<Array> {
        let shape = shape.into();
        let s = backend(device)?.full(shape.elem_count(), dtype, value)?;
        Ok(Array::from_storage(s, shape))
    }

    pub fn zeros(shape: impl Into<Shape>, dtype: DType, device: Device) -> Result<Array> {
        Array::full(shape, 0.0, dtype, device)
    }

    pub fn ones(shape: impl Into<Shape>, dtype: DType, device: Device) -> Result<Array> {
        Array::full(shape, 1.0, dtype, device)
    }

    pub fn full_like(&self, value: f64) -> Result<Array> {
        let s = self.backend().full(self.elem_count(), self.dtype(), value)?;
        Ok(Array::from_storage(s, self.shape().clone()))
    }

    pub fn zeros_like(&self) -> Result<Array> {
        self.full_like(0.0)
    }

    pub fn ones_like(&self) -> Result<Array> {
        self.full_like(1.0)
    }

    /// A 1-d array holding a scalar broadcast to `shape` (no allocation beyond one element).
    pub fn scalar_like(&self, value: f64, shape: &Shape) -> Result<Array> {
        let s = self.backend().full(1, self.dtype(), value)?;
        let one = Array::from_storage(s, Shape::scalar());
        Ok(one.with_layout(one.layout().broadcast_to(shape)?))
    }

    /// `start, start + step, ...` below `end`.
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType, device: Device) -> Result<Array> {
        if step == 0.0 || !((end - start) / step).is_finite() {
            return Err(Error::invalid("arange", format!("bad range {start}..{end} step {step}")));
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        Array::from_vec(v, n, Device::Cpu)?.to_dtype(dtype)?.to_device(device)
    }

    /// A draw from `dist` with the counter-based generator keyed by `key`
    /// (see [`crate::rng::Rng::next_key`]).
    pub fn random(
        shape: impl Into<Shape>,
        dist: Distribution,
        key: u64,
        dtype: DType,
        device: Device,
    ) -> Result<Array> {
        let shape = shape.into();
        let s = backend(device)?.random(shape.elem_count(), dtype, dist, key)?;
        Ok(Array::from_storage(s, shape))
    }
}

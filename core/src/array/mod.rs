//! `Array`: an n-dimensional array on a device, without gradient tracking. It owns a
//! shared storage and a layout; views share the storage. Every op checks its arguments
//! (shapes, axes, dtypes, devices) and then calls the storage's backend. The autodiff
//! `Tensor` wraps an `Array` and records ops for backward.

mod create;
pub mod fused;
mod ops;
mod views;

use crate::backend::{Storage, StorageBox, View};
use crate::{Backend, DType, Device, Element, Error, Layout, Result, Shape};
use std::fmt;
use std::sync::Arc;

#[derive(Clone)]
pub struct Array {
    storage: Arc<dyn Storage>,
    layout: Layout,
}

impl Array {
    /// Wrap a freshly computed, contiguous storage.
    pub fn from_storage(storage: StorageBox, shape: impl Into<Shape>) -> Array {
        let layout = Layout::contiguous(shape);
        debug_assert!(layout.elem_count() <= storage.len());
        Array { storage: Arc::from(storage), layout }
    }

    /// A new view of the same storage.
    pub fn with_layout(&self, layout: Layout) -> Array {
        debug_assert!(layout.max_offset() <= self.storage.len());
        Array { storage: self.storage.clone(), layout }
    }

    pub fn shape(&self) -> &Shape {
        self.layout.shape()
    }
    pub fn dims(&self) -> &[usize] {
        self.layout.dims()
    }
    pub fn rank(&self) -> usize {
        self.layout.rank()
    }
    pub fn elem_count(&self) -> usize {
        self.layout.elem_count()
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }
    pub fn device(&self) -> Device {
        self.storage.backend().device()
    }
    pub fn backend(&self) -> Arc<dyn Backend> {
        self.storage.backend()
    }
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }
    /// Bytes of the underlying storage (shared with other views of it).
    pub fn storage_bytes(&self) -> usize {
        self.storage.len() * self.dtype().size_in_bytes()
    }
    /// True when both arrays are views of one storage.
    pub fn same_storage(&self, other: &Array) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    pub fn view(&self) -> View<'_> {
        View::new(self.storage.as_ref(), &self.layout)
    }

    /// The elements in row-major order, converted to `T`.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        Ok(self.backend().download(self.view())?.to_vec())
    }

    /// The single element of a one-element array.
    pub fn to_scalar<T: Element>(&self) -> Result<T> {
        if self.elem_count() != 1 {
            return Err(Error::invalid("to_scalar", format!("array of shape {} is not a scalar", self.shape())));
        }
        Ok(self.to_vec::<T>()?[0])
    }

    pub fn to_device(&self, device: Device) -> Result<Array> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let host = self.backend().download(self.view())?;
        let target = crate::backend::backend(device)?;
        Ok(Array::from_storage(target.upload(&host)?, self.shape().clone()))
    }

    pub fn to_dtype(&self, dtype: DType) -> Result<Array> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        Ok(Array::from_storage(self.backend().cast(self.view(), dtype)?, self.shape().clone()))
    }

    pub(crate) fn same_device(&self, op: &'static str, other: &Array) -> Result<()> {
        let (a, b) = (self.device(), other.device());
        if a != b {
            return Err(Error::DeviceMismatch { op, lhs: a, rhs: b });
        }
        Ok(())
    }

    pub(crate) fn same_dtype(&self, op: &'static str, other: &Array) -> Result<()> {
        if self.dtype() != other.dtype() {
            return Err(Error::DTypeMismatch { op, lhs: self.dtype(), rhs: other.dtype() });
        }
        Ok(())
    }

    pub(crate) fn require_float(&self, op: &'static str) -> Result<()> {
        if !self.dtype().is_float() {
            return Err(Error::UnsupportedDType { op, dtype: self.dtype(), device: self.device() });
        }
        Ok(())
    }

    pub(crate) fn require_index(&self, op: &'static str) -> Result<()> {
        if self.dtype() != DType::I32 {
            return Err(Error::invalid(op, format!("indices must have dtype i32, got {}", self.dtype())));
        }
        Ok(())
    }
}

impl fmt::Debug for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Array({}, {}, {}", self.shape(), self.dtype(), self.device())?;
        if self.elem_count() <= 32 {
            if let Ok(v) = self.to_vec::<f64>() {
                write!(f, ", {v:?}")?;
            }
        }
        write!(f, ")")
    }
}

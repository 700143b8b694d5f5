//! CPU storage: host vectors of f32, f64 or i32, counted in the live-byte counters while
//! they exist.

use super::{counters, CpuBackend};
use crate::backend::Storage;
use crate::{Backend, DType, Element};
use std::any::Any;
use std::sync::Arc;

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
    pub(crate) fn bytes(&self) -> u64 {
        (self.len() * self.dtype().size_in_bytes()) as u64
    }
}

impl CpuStorage {
    pub fn new(data: CpuData) -> Self {
        counters::allocated(data.bytes());
        CpuStorage { data }
    }

    pub fn from_vec<T: Element>(v: Vec<T>) -> Self {
        Self::new(T::wrap(v))
    }

    pub fn data(&self) -> &CpuData {
        &self.data
    }

    pub(crate) fn data_mut(&mut self) -> &mut CpuData {
        &mut self.data
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
        counters::freed(data.bytes());
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
        counters::freed(self.data.bytes());
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

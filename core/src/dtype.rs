//! Element types. Floats carry the numerics; `I32` carries indices and class labels
//! (i32 rather than i64 because WGSL has no 64-bit integers, and PyTorch's negative
//! `ignore_index` still fits).

use crate::cpu::CpuData;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    I32,
}

impl DType {
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I32 => "i32",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Rust scalar type that a tensor can hold.
pub trait Element: Copy + Send + Sync + PartialOrd + fmt::Debug + bytemuck::Pod + Default + 'static {
    const DTYPE: DType;
    fn as_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    /// Wrap a host vector of this type.
    fn wrap(v: Vec<Self>) -> CpuData;
    /// Borrow host data if it holds this type.
    fn slice(d: &CpuData) -> Option<&[Self]>;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn wrap(v: Vec<Self>) -> CpuData {
        CpuData::F32(v)
    }
    fn slice(d: &CpuData) -> Option<&[Self]> {
        match d {
            CpuData::F32(v) => Some(v),
            _ => None,
        }
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    fn wrap(v: Vec<Self>) -> CpuData {
        CpuData::F64(v)
    }
    fn slice(d: &CpuData) -> Option<&[Self]> {
        match d {
            CpuData::F64(v) => Some(v),
            _ => None,
        }
    }
    fn as_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

impl Element for i32 {
    const DTYPE: DType = DType::I32;
    fn wrap(v: Vec<Self>) -> CpuData {
        CpuData::I32(v)
    }
    fn slice(d: &CpuData) -> Option<&[Self]> {
        match d {
            CpuData::I32(v) => Some(v),
            _ => None,
        }
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as i32
    }
}

/// A floating-point element: the CPU kernels are generic over this, so every op runs in
/// f64 for gradient checks and in f32 for speed from the same source.
pub trait FloatElement: Element + num_traits::Float + std::iter::Sum {
    fn from_usize(n: usize) -> Self {
        Self::from_f64(n as f64)
    }
}
impl FloatElement for f32 {}
impl FloatElement for f64 {}

//! The one way the CPU backend picks a kernel by dtype. `float!(op, dtype, T => body)` runs
//! `body` with `T` aliased to `f32` or `f64` (any other dtype is an `UnsupportedDType` error
//! naming `op`); `any_dtype!` also takes `i32`. The body is ordinary monomorphic code: it
//! borrows inputs with [`data`] or [`dense`] (checking their dtype against `T`) and wraps its
//! result with [`out`].

use super::strided::contiguous;
use super::{CpuData, CpuStorage};
use crate::backend::{StorageBox, View};
use crate::{DType, Device, Element, Error, Result};
use std::borrow::Cow;

macro_rules! float {
    ($op:expr, $dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $t = f32;
                $body
            }
            $crate::DType::F64 => {
                type $t = f64;
                $body
            }
            d => Err($crate::cpu::dispatch::unsupported($op, d)),
        }
    };
}

macro_rules! any_dtype {
    ($op:expr, $dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            $crate::DType::I32 => {
                type $t = i32;
                $body
            }
            d => $crate::cpu::dispatch::float!($op, d, $t => $body),
        }
    };
}

pub(crate) use {any_dtype, float};

pub(crate) fn unsupported(op: &'static str, dtype: DType) -> Error {
    Error::UnsupportedDType { op, dtype, device: Device::Cpu }
}

fn storage<'a>(v: View<'a>) -> &'a CpuData {
    // Views reach the CPU backend only through storages it created (Array checks devices).
    v.storage.as_any().downcast_ref::<CpuStorage>().expect("a CPU storage").data()
}

/// The elements under a view (strided: read them through `v.layout`).
pub(crate) fn data<'a, T: Element>(op: &'static str, v: View<'a>) -> Result<&'a [T]> {
    let d = storage(v);
    T::slice(d).ok_or(Error::DTypeMismatch { op, lhs: T::DTYPE, rhs: d.dtype() })
}

/// The view's elements in row-major order (borrowed when already contiguous).
pub(crate) fn dense<'a, T: Element>(op: &'static str, v: View<'a>) -> Result<Cow<'a, [T]>> {
    Ok(contiguous(data::<T>(op, v)?, v.layout))
}

/// The elements of a storage being written in place.
pub(crate) fn data_mut<'a, T: Element>(op: &'static str, d: &'a mut CpuData) -> Result<&'a mut [T]> {
    if d.dtype() != T::DTYPE {
        return Err(Error::DTypeMismatch { op, lhs: d.dtype(), rhs: T::DTYPE });
    }
    // The dtype check makes each cast an identity.
    Ok(match d {
        CpuData::F32(v) => bytemuck::cast_slice_mut(v),
        CpuData::F64(v) => bytemuck::cast_slice_mut(v),
        CpuData::I32(v) => bytemuck::cast_slice_mut(v),
    })
}

/// Operands of a kernel that takes one dtype for all.
pub(crate) fn same_dtype(op: &'static str, a: View, b: View) -> Result<()> {
    if a.dtype() != b.dtype() {
        return Err(Error::DTypeMismatch { op, lhs: a.dtype(), rhs: b.dtype() });
    }
    Ok(())
}

/// A kernel's result as a storage.
pub(crate) fn out<T: Element>(v: Vec<T>) -> StorageBox {
    Box::new(CpuStorage::new(T::wrap(v)))
}

/// The length of the last axis: the row length of the row-wise kernels (1 for a scalar).
pub(crate) fn last_dim(v: View) -> usize {
    v.layout.dims().last().copied().unwrap_or(1)
}

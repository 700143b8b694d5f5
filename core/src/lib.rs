//! plies-core: the tensor engine under Plies. Shapes and layouts, dtypes, devices, the
//! `Backend` trait every device implements, the native CPU backend, seeded random
//! numbers, and `Array`, the untracked n-dimensional array the autodiff `Tensor` wraps.

mod array;
pub mod backend;
pub mod cpu;
mod device;
mod dtype;
mod error;
pub mod layout;
mod op;
pub mod rng;
pub mod shape;

pub use array::fused::NormResult;
pub use array::Array;
pub use backend::{backend, AdamWStep, Backend, CrossEntropyOpts, MemoryStats, Storage, View};
pub use device::Device;
pub use dtype::{DType, Element, FloatElement};
pub use error::{Error, Pass, Result};
pub use layout::Layout;
pub use op::{
    BinaryOp, Distribution, NormKind, ReduceOp, UnaryInfo, UnaryOp, BINARY_OPS, GELU_TANH_C, GELU_TANH_K,
    PLAIN_UNARY_METHODS, UNARY_OPS,
};
pub use shape::{AllAxes, Axes, Axis, Shape};

//! plies-autodiff: reverse-mode automatic differentiation over `plies_core::Array`.
//!
//! `Tensor` = value + (optional) graph node. Ops record a node only when an input
//! requires a gradient; `loss.backward()` fills `.grad()` of every leaf that requires one.

pub mod gradcheck;
mod graph;
pub mod memory;
mod ops;
mod tensor;

pub use gradcheck::{check_gradients, GradCheck};
pub use graph::{is_grad_enabled, no_grad, NoGradGuard};
pub use memory::{layer_scope, LayerScope};
pub use ops::Reduction;
pub use tensor::Tensor;

pub use plies_core::{
    rng, AllAxes, Array, Axes, Axis, BinaryOp, CrossEntropyOpts, DType, Device, Distribution, Error, NormKind,
    ReduceOp, Result, Shape, UnaryOp,
};

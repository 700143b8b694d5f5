//! plies-autodiff: reverse-mode automatic differentiation over `plies_core::Array`.
//!
//! `Tensor` = value + (optional) graph node. Ops record a node only when an input
//! requires a gradient; `loss.backward()` fills `.grad()` of every leaf that requires one.

mod anomaly;
pub mod gradcheck;
mod graph;
pub mod memory;
mod ops;
mod tensor;

pub use anomaly::{detect_anomaly, is_anomaly_enabled, AnomalyGuard};
pub use gradcheck::{check_gradients, GradCheck};
pub use graph::{is_grad_enabled, live_nodes, no_grad, NoGradGuard};
pub use memory::{layer_scope, LayerScope};
pub use ops::Reduction;
pub use tensor::Tensor;

pub use plies_core::{
    rng, AllAxes, Array, Axes, Axis, BinaryOp, CrossEntropyOpts, DType, Device, Distribution, Error, NormKind, Pass,
    ReduceOp, Result, Shape, UnaryOp,
};

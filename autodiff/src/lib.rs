//! plies-autodiff: reverse-mode automatic differentiation over `plies_core::Array`.
//!
//! `Tensor` = value + (optional) graph node. Ops record a node only when an input
//! requires a gradient; `loss.backward()` fills `.grad()` of every leaf that requires one.
//!
//! ```
//! use plies_autodiff::{Device, Tensor};
//!
//! // y = sum(w * x): dy/dw = x, and x (a constant) gets no gradient.
//! let w = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3], Device::Cpu);
//! w.set_requires_grad(true);
//! let x = Tensor::from_vec(vec![0.5f32, -1.0, 4.0], [3], Device::Cpu);
//! let y = w.try_mul(&x)?.try_sum_all()?;
//! assert_eq!(y.item(), 10.5);
//! y.backward()?;
//! assert_eq!(w.grad().unwrap().to_vec::<f32>()?, vec![0.5, -1.0, 4.0]);
//! assert!(x.grad().is_none());
//! # Ok::<(), plies_autodiff::Error>(())
//! ```

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

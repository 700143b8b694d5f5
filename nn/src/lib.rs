//! plies-nn: modules with named, layer-indexed parameters; layers; losses; optimizers and
//! schedules; safetensors checkpoints; datasets and loaders; training UX (progress,
//! metrics log, plots).
//!
//! A model, an optimizer and a training loop:
//!
//! ```
//! use plies_nn::prelude::*;
//!
//! let mut init = Init::new(0);
//! let model = Mlp::new(&mut init, &[4, 16, 3], Activation::Relu);
//! let mut opt = Adam::new(model.named_parameters(), AdamConfig::adamw(1e-2, 0.01))?;
//! let x = Tensor::from_vec((0..24).map(|i| (i % 7) as f32 / 7.0).collect(), [6, 4], Device::Cpu);
//! let y = Tensor::from_vec(vec![0i32, 1, 2, 0, 1, 2], [6], Device::Cpu);
//! let mut losses = Vec::new();
//! for _ in 0..100 {
//!     let loss = model.try_forward(&x)?.try_cross_entropy(&y)?;
//!     loss.backward()?;
//!     opt.step()?;
//!     opt.zero_grad();
//!     losses.push(loss.item());
//! }
//! assert!(losses[99] < 0.5 * losses[0], "{losses:?}");
//! # Ok::<(), plies_autodiff::Error>(())
//! ```

// So that `#[derive(Module)]`, which names `::plies_nn`, works inside this crate too.
extern crate self as plies_nn;

pub mod checkpoint;
pub mod data;
pub mod gradcheck;
pub mod init;
pub mod layers;
pub mod loss;
pub mod memory;
pub mod module;
pub mod optim;
pub mod stats;
pub mod train;
pub mod unvisited;
pub mod visitable;

pub use init::{Init, Initializer};
pub use memory::MemoryReport;
pub use module::{Layer, Mode, Module, NamedParam, Scope};
/// `#[derive(Module)]`: see [`visitable`] and the `plies-nn-derive` crate.
pub use plies_nn_derive::Module;
pub use stats::LayerStats;
pub use unvisited::check_visited;

/// The names most model code needs.
pub mod prelude {
    pub use crate::init::{Init, Initializer};
    pub use crate::layers::*;
    pub use crate::loss::{self, CrossEntropy};
    pub use crate::module::{Layer, Module, NamedParam};
    pub use crate::optim::{clip_grad_norm, Adam, AdamConfig, Optimizer, ParamGroup, Schedule, Sgd, SgdConfig};
    pub use plies_autodiff::{no_grad, DType, Device, Reduction, Tensor};
    pub use plies_nn_derive::Module;
}

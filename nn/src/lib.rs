//! plies-nn: modules with named, layer-indexed parameters; layers; losses; optimizers and
//! schedules; safetensors checkpoints; datasets and loaders; training UX (progress,
//! metrics log, plots).

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
pub mod visitable;

pub use init::{Init, Initializer};
pub use memory::MemoryReport;
pub use module::{Layer, Mode, Module, NamedParam, Scope};
/// `#[derive(Module)]`: see [`visitable`] and the `plies-nn-derive` crate.
pub use plies_nn_derive::Module;
pub use stats::LayerStats;

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

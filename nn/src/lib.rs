//! plies-nn: modules with named, layer-indexed parameters; layers; losses; optimizers and
//! schedules; safetensors checkpoints; datasets and loaders; training UX (progress,
//! metrics log, plots).

pub mod checkpoint;
pub mod data;
pub mod layers;
pub mod loss;
pub mod module;
pub mod optim;
pub mod train;

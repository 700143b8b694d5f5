//! Plies: a deep-learning framework for layer-wise training research.
//!
//! This facade re-exports the crates: `core` (arrays, backends), `autodiff` (Tensor).
pub use plies_autodiff as autodiff;
pub use plies_core as core;
pub use plies_nn as nn;

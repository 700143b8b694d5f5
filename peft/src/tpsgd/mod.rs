//! Layer-wise training without end-to-end backprop: target-projection SGD (tpSGD, Lomnitz et
//! al. 2023) and its parent, direct random target projection (DRTP, Frenkel et al. 2021).
//!
//! A [`LocalNet`] is a chain of hidden stages and an output head. The [`LocalTrainer`] trains
//! it one stage at a time on each batch: stage i sees its input as a constant (the previous
//! stage's output, detached), gets a local signal from a fixed random projection of the
//! one-hot label, takes its optimizer step, and hands its detached output on; the head
//! learns from the task loss (cross-entropy). No graph spans two stages, so the activation
//! memory of a step is one stage's input and output, whatever the depth.
//!
//! The two rules differ in one line (see [`Rule`]):
//! - tpSGD: the projection `P_i y` is a *target* for the stage's activation `a_i`, and the
//!   stage descends a local loss `J_i = loss(a_i, P_i y)` (L2 by default, or L1).
//! - DRTP: the projection `B_i y` is the stage's *error*: `d/da_i := B_i y` (divided by the
//!   batch size, as a batch-mean loss's gradient would be), so `delta_i = (B_i y) ⊙ act'(z_i)`
//!   and `dW_i = delta_i h_{i-1}^T`.
//!
//! Stages: a feed-forward stage `after(act(layer(x)))` (a Linear, or a Conv2d whose target,
//! one value per channel, is broadcast over the feature map; `after` holds parameter-free
//! layers such as pooling and flatten), or an Elman RNN whose local signal acts on the hidden
//! state at every time step with the previous state detached (no backprop through time).

mod net;
mod projection;
mod trainer;

pub use net::{Hidden, LocalNet};
pub use projection::{target_range, Projection};
pub use trainer::{backprop_step, LocalConfig, LocalTrainer, StepReport};

/// How a hidden stage learns from its projection of the label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// tpSGD: the projection, mapped into the activation's range, is a local target.
    TargetProjection,
    /// DRTP: the raw projection is the local error signal at the activation.
    Drtp,
}

/// The local loss of tpSGD (DRTP has none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LocalLoss {
    /// Mean squared error over the batch and the units.
    #[default]
    L2,
    /// Mean absolute error over the batch and the units.
    L1,
}

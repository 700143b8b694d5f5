//! Probes: the model's loss on a probe batch with some layers' adapters scaled down, as IST
//! measures it.

use crate::lora::{Lora, Restore};
use plies_autodiff::{no_grad, Error, Result};
use plies_nn::Module;

/// Adapters whose scaling can be changed per layer for a scope.
pub trait ScaledLayers {
    /// Multiply the adapter scaling of the model layers `layers` by `factor` until the guard
    /// drops (also when the code in between fails or panics).
    fn scaled_layers(&self, factor: f64, layers: &[usize]) -> Result<Restore<'_>>;
}

impl ScaledLayers for Lora {
    fn scaled_layers(&self, factor: f64, layers: &[usize]) -> Result<Restore<'_>> {
        self.scaled(factor, |_, layer| layers.contains(&layer))
    }
}

/// What a selector may measure.
pub trait Probe {
    /// Draw the next probe batch (from the training data).
    fn next_batch(&mut self) -> Result<()>;

    /// The loss on the current probe batch, without a graph, with the adapter scaling of the
    /// layers `suppressed` multiplied by `factor` and restored afterwards.
    fn loss(&mut self, suppressed: &[usize], factor: f64) -> Result<f64>;
}

/// For selectors that measure nothing.
pub struct NoProbe;

impl Probe for NoProbe {
    fn next_batch(&mut self) -> Result<()> {
        Err(Error::invalid("layer selection", "this selector needs a probe (ScaledProbe), got NoProbe"))
    }

    fn loss(&mut self, _: &[usize], _: f64) -> Result<f64> {
        self.next_batch().map(|_| f64::NAN)
    }
}

/// A probe from a model, its scalable adapters, a batch source and a loss. The loss runs in
/// evaluation mode (no dropout, as `ist.py` calls `model.eval()`) under `no_grad`; the mode
/// and the scaling are restored after each probe, also when it fails.
pub struct ScaledProbe<'a, S: ScaledLayers + ?Sized, T, B, L> {
    model: &'a dyn Module,
    adapters: &'a S,
    next: B,
    loss: L,
    batch: Option<T>,
}

impl<'a, S, T, B, L> ScaledProbe<'a, S, T, B, L>
where
    S: ScaledLayers + ?Sized,
    B: FnMut() -> Result<T>,
    L: FnMut(&T) -> Result<f64>,
{
    pub fn new(model: &'a dyn Module, adapters: &'a S, next: B, loss: L) -> Self {
        ScaledProbe { model, adapters, next, loss, batch: None }
    }
}

/// Puts a model back into the mode it was in.
struct ModeGuard<'a>(&'a dyn Module, bool);

impl Drop for ModeGuard<'_> {
    fn drop(&mut self) {
        self.0.train(self.1);
    }
}

impl<S, T, B, L> Probe for ScaledProbe<'_, S, T, B, L>
where
    S: ScaledLayers + ?Sized,
    B: FnMut() -> Result<T>,
    L: FnMut(&T) -> Result<f64>,
{
    fn next_batch(&mut self) -> Result<()> {
        self.batch = Some((self.next)()?);
        Ok(())
    }

    fn loss(&mut self, suppressed: &[usize], factor: f64) -> Result<f64> {
        let batch = self
            .batch
            .as_ref()
            .ok_or_else(|| Error::invalid("probe", "loss asked for before the first probe batch (call next_batch)"))?;
        let _mode = ModeGuard(self.model, self.model.is_training());
        let _scale = self.adapters.scaled_layers(factor, suppressed)?;
        self.model.eval();
        no_grad(|| (self.loss)(batch))
    }
}

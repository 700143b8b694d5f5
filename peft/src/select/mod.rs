//! Layer selection: before each step a [`LayerSelector`] chooses which layers' trainable
//! parameters get gradients; the others have `requires_grad` off for that step, so they
//! record no graph, receive no gradient and are left alone by the optimizer (no update, no
//! moment decay, no step count), and backward stops below the lowest selected layer.
//!
//! ```ignore
//! let lora = Lora::new(&model, config, &mut init)?;
//! let layers = LayerParams::trainable(&model)?;          // the adapters, grouped by layer
//! let mut opt = Adam::new(layers.params(), AdamConfig::adamw(lr, 0.0))?;
//! let mut ist = Ist::new(IstConfig::paper(layers.len(), seed))?;
//! let mut probe = ScaledProbe::new(&model, &lora, || next_batch(), |b| loss_of(b));
//! for step in 0..steps {
//!     let chosen = layers.choose(&mut ist, step, &mut probe)?;   // model layer indices
//!     // forward, backward, opt.step(), opt.zero_grad()
//! }
//! ```
//!
//! Selectors work on positions `0..L` of the selectable layers; [`LayerParams`] maps them to
//! the model's layer indices (for a GPT with LoRA on its blocks, position i is block i, model
//! layer i + 1). The grouping is by the layer index every plies-nn parameter carries, so one
//! selector serves LoRA, DoRA, MoLA experts and (LISA) plain weights alike.
//!
//! Selectors: [`AllLayers`], [`FixedLayers`], [`RandomLayers`] (RST), [`Lisa`] and [`Ist`].

mod basic;
mod ist;
mod probe;
pub mod sample;

pub use basic::{AllLayers, FixedLayers, Lisa, RandomLayers};
pub use ist::{Ist, IstConfig, ScoreUpdate};
pub use probe::{NoProbe, Probe, ScaledLayers, ScaledProbe};

use plies_autodiff::{Error, Result};
use plies_nn::{Module, NamedParam};
use std::collections::BTreeMap;

/// Chooses the layers that train at each step.
pub trait LayerSelector {
    fn name(&self) -> &'static str;

    /// The positions (in `0..L`, increasing) of the layers whose parameters get gradients at
    /// step `step` (0-based). `probe` evaluates the model with some layers' adapters scaled,
    /// for selectors that measure importance (IST); the others ignore it.
    fn select(&mut self, step: u64, probe: &mut dyn Probe) -> Result<Vec<usize>>;
}

/// The trainable parameters of a model grouped by layer: the selectable layers, and those
/// that train at every step (LISA's embeddings and head).
#[derive(Clone, Debug)]
pub struct LayerParams {
    /// The model layer index of each position.
    layers: Vec<usize>,
    params: Vec<Vec<NamedParam>>,
    always: Vec<NamedParam>,
}

impl LayerParams {
    /// Every parameter that requires a gradient now (after `Lora::new`: the adapters),
    /// grouped by layer; each layer holding one is selectable.
    pub fn trainable(model: &dyn Module) -> Result<LayerParams> {
        LayerParams::trainable_with_always_on(model, &[])
    }

    /// As [`trainable`](Self::trainable), but the layers in `always_on` train at every step
    /// and are not selectable (LISA keeps the embeddings and the head on).
    pub fn trainable_with_always_on(model: &dyn Module, always_on: &[usize]) -> Result<LayerParams> {
        let mut by_layer: BTreeMap<usize, Vec<NamedParam>> = BTreeMap::new();
        let mut always = Vec::new();
        for p in model.trainable_parameters() {
            if always_on.contains(&p.layer) {
                always.push(p);
            } else {
                by_layer.entry(p.layer).or_default().push(p);
            }
        }
        if by_layer.is_empty() {
            return Err(Error::invalid(
                "layer selection",
                format!(
                    "the model has no trainable parameter outside the always-on layers {always_on:?} \
                     (attach adapters or unfreeze layers first)"
                ),
            ));
        }
        let (layers, params) = by_layer.into_iter().unzip();
        Ok(LayerParams { layers, params, always })
    }

    /// The number of selectable layers (L).
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The model layer index of each position.
    pub fn layers(&self) -> &[usize] {
        &self.layers
    }

    /// The parameters of position `i`.
    pub fn layer_params(&self, i: usize) -> &[NamedParam] {
        &self.params[i]
    }

    /// The parameters that train every step.
    pub fn always_on(&self) -> &[NamedParam] {
        &self.always
    }

    /// Every parameter that can train (give these to the optimizer).
    pub fn params(&self) -> Vec<NamedParam> {
        self.always.iter().chain(self.params.iter().flatten()).cloned().collect()
    }

    /// Switch `requires_grad` on for the layers at `positions` (and the always-on ones) and
    /// off for the rest.
    pub fn apply(&self, positions: &[usize]) -> Result<()> {
        if let Some(&bad) = positions.iter().find(|&&p| p >= self.len()) {
            return Err(Error::invalid(
                "layer selection",
                format!("position {bad} selected, but there are {} selectable layers", self.len()),
            ));
        }
        for (i, ps) in self.params.iter().enumerate() {
            let on = positions.contains(&i);
            for p in ps {
                p.tensor.set_requires_grad(on);
            }
        }
        for p in &self.always {
            p.tensor.set_requires_grad(true);
        }
        Ok(())
    }

    /// Ask `selector` for step `step`'s layers and apply them; returns the model layer
    /// indices chosen. The probe is handed model layer indices.
    pub fn choose(&self, selector: &mut dyn LayerSelector, step: u64, probe: &mut dyn Probe) -> Result<Vec<usize>> {
        let mut mapped = Mapped { layers: &self.layers, inner: probe, buf: Vec::new() };
        let positions = selector.select(step, &mut mapped)?;
        self.apply(&positions)?;
        Ok(positions.iter().map(|&p| self.layers[p]).collect())
    }
}

/// A probe seen through positions: translates them to model layer indices.
struct Mapped<'a> {
    layers: &'a [usize],
    inner: &'a mut dyn Probe,
    buf: Vec<usize>,
}

impl Probe for Mapped<'_> {
    fn next_batch(&mut self) -> Result<()> {
        self.inner.next_batch()
    }

    fn loss(&mut self, suppressed: &[usize], factor: f64) -> Result<f64> {
        self.buf.clear();
        for &p in suppressed {
            let layer = self.layers.get(p).ok_or_else(|| {
                Error::invalid("layer selection", format!("probe of position {p} of {} layers", self.layers.len()))
            })?;
            self.buf.push(*layer);
        }
        let layers = std::mem::take(&mut self.buf);
        let out = self.inner.loss(&layers, factor);
        self.buf = layers;
        out
    }
}

#[cfg(test)]
mod tests;

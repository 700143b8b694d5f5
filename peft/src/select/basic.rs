//! The selectors that measure nothing: all layers, a fixed list, RST and LISA.

use super::sample::uniform_subset;
use super::{LayerSelector, Probe};
use plies_autodiff::{Error, Result};
use plies_core::rng::Rng;

/// Every layer at every step (plain LoRA).
pub struct AllLayers {
    pub layers: usize,
}

impl LayerSelector for AllLayers {
    fn name(&self) -> &'static str {
        "all"
    }

    fn select(&mut self, _step: u64, _probe: &mut dyn Probe) -> Result<Vec<usize>> {
        Ok((0..self.layers).collect())
    }
}

/// The same positions at every step.
pub struct FixedLayers {
    positions: Vec<usize>,
}

impl FixedLayers {
    pub fn new(mut positions: Vec<usize>) -> FixedLayers {
        positions.sort_unstable();
        positions.dedup();
        FixedLayers { positions }
    }
}

impl LayerSelector for FixedLayers {
    fn name(&self) -> &'static str {
        "fixed"
    }

    fn select(&mut self, _step: u64, _probe: &mut dyn Probe) -> Result<Vec<usize>> {
        Ok(self.positions.clone())
    }
}

fn check_count(method: &'static str, n: usize, layers: usize) -> Result<()> {
    if n == 0 || n > layers {
        return Err(Error::invalid(
            method,
            format!("cannot train {n} of {layers} layers per step (need 1..={layers})"),
        ));
    }
    Ok(())
}

/// RST, IST's baseline: `n` layers drawn uniformly without replacement at every step.
pub struct RandomLayers {
    layers: usize,
    n: usize,
    rng: Rng,
}

impl RandomLayers {
    pub fn new(layers: usize, n: usize, seed: u64) -> Result<RandomLayers> {
        check_count("rst", n, layers)?;
        Ok(RandomLayers { layers, n, rng: Rng::new(seed) })
    }
}

impl LayerSelector for RandomLayers {
    fn name(&self) -> &'static str {
        "rst"
    }

    fn select(&mut self, _step: u64, _probe: &mut dyn Probe) -> Result<Vec<usize>> {
        uniform_subset(self.layers, self.n, &mut self.rng)
    }
}

/// LISA (Pan et al. 2024): every `period` steps, `n` of the selectable (middle) layers drawn
/// uniformly; the embeddings and head train throughout, which is
/// [`LayerParams::trainable_with_always_on`](super::LayerParams::trainable_with_always_on)'s
/// part. Meant for full-weight training without adapters.
pub struct Lisa {
    layers: usize,
    n: usize,
    period: u64,
    rng: Rng,
    current: Vec<usize>,
}

impl Lisa {
    pub fn new(layers: usize, n: usize, period: u64, seed: u64) -> Result<Lisa> {
        check_count("lisa", n, layers)?;
        if period == 0 {
            return Err(Error::invalid("lisa", "the sampling period must be at least 1 step"));
        }
        Ok(Lisa { layers, n, period, rng: Rng::new(seed), current: Vec::new() })
    }
}

impl LayerSelector for Lisa {
    fn name(&self) -> &'static str {
        "lisa"
    }

    fn select(&mut self, step: u64, _probe: &mut dyn Probe) -> Result<Vec<usize>> {
        if step.is_multiple_of(self.period) || self.current.is_empty() {
            self.current = uniform_subset(self.layers, self.n, &mut self.rng)?;
        }
        Ok(self.current.clone())
    }
}

//! Multi-layer perceptron: Linear layers with an activation between them (none after the
//! last). Linear i is named `layers.{i}` and forms layer i.

use super::{Activation, Linear};
use crate::init::Init;
use crate::module::Layer;
use crate::Module;
use plies_autodiff::{Error, Result, Tensor};

#[derive(Module)]
pub struct Mlp {
    /// Linear `i` forms layer `i`.
    #[module(layers_from = 0)]
    pub layers: Vec<Linear>,
    #[module(skip)]
    pub activation: Activation,
}

impl Mlp {
    /// `sizes = [in, hidden.., out]`, e.g. `[64, 256, 256, 10]` for three Linear layers.
    pub fn new(init: &mut Init, sizes: &[usize], activation: Activation) -> Mlp {
        assert!(sizes.len() >= 2, "an MLP needs at least input and output sizes, got {sizes:?}");
        let layers = sizes.windows(2).map(|w| Linear::new(init, w[0], w[1], true)).collect();
        Mlp { layers, activation }
    }
}

impl Layer for Mlp {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let last = self.layers.len().checked_sub(1).ok_or_else(|| Error::invalid("mlp", "no layers"))?;
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            let _layer = plies_autodiff::layer_scope(i);
            h = l.try_forward(&h)?;
            if i < last {
                h = self.activation.try_apply(&h)?;
            }
        }
        Ok(h)
    }
}

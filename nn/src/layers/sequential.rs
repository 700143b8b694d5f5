//! A chain of layers. Child i is named `i` (as in PyTorch's `nn.Sequential`) and forms
//! layer i.

use crate::module::{Layer, Module, Scope};
use plies_autodiff::{Result, Tensor};

#[derive(Default)]
pub struct Sequential {
    pub layers: Vec<Box<dyn Layer>>,
}

impl Sequential {
    pub fn new() -> Sequential {
        Sequential::default()
    }

    /// Append a layer (builder style).
    pub fn push(mut self, layer: impl Layer + 'static) -> Sequential {
        self.layers.push(Box::new(layer));
        self
    }

    pub fn len(&self) -> usize {
        self.layers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Module for Sequential {
    fn visit(&self, s: &mut Scope<'_>) {
        for (i, l) in self.layers.iter().enumerate() {
            s.layer(&i.to_string(), i, l.as_ref());
        }
    }
}

impl Layer for Sequential {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            let _layer = plies_autodiff::layer_scope(i);
            h = l.try_forward(&h)?;
        }
        Ok(h)
    }
}

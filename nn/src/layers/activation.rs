//! Activations as parameter-free layers (for `Sequential` and `Mlp`), and `Flatten`.

use crate::module::{Layer, Module, Scope};
use plies_autodiff::{Result, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Relu,
    /// GELU with the tanh approximation (GPT-2's; PyTorch `GELU(approximate="tanh")`).
    Gelu,
    /// Exact GELU (PyTorch's default `GELU()`).
    GeluErf,
    Tanh,
    Sigmoid,
    Silu,
}

impl Activation {
    pub fn try_apply(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Identity => Ok(x.clone()),
            Activation::Relu => x.try_relu(),
            Activation::Gelu => x.try_gelu(),
            Activation::GeluErf => x.try_gelu_erf(),
            Activation::Tanh => x.try_tanh(),
            Activation::Sigmoid => x.try_sigmoid(),
            Activation::Silu => x.try_silu(),
        }
    }
}

impl Module for Activation {
    fn visit(&self, _: &mut Scope<'_>) {}
}

impl Layer for Activation {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        self.try_apply(x)
    }
}

/// Merge dims `start..=end` into one (PyTorch's `Flatten`, default from dim 1 to the end).
#[derive(Clone, Copy, Debug)]
pub struct Flatten {
    pub start: i64,
    pub end: i64,
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten { start: 1, end: -1 }
    }
}

impl Module for Flatten {
    fn visit(&self, _: &mut Scope<'_>) {}
}

impl Layer for Flatten {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        x.try_flatten(self.start, self.end)
    }
}

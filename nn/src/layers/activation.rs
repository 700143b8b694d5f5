//! Activations as parameter-free layers (for `Sequential` and `Mlp`), and `Flatten`.

use crate::module::{Layer, Module, Scope};
use plies_autodiff::{Result, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Relu,
    /// GELU with the tanh approximation (GPT-2's; PyTorch `GELU(approximate="tanh")`),
    /// named `"gelu_tanh"` in configurations.
    GeluTanh,
    /// Exact GELU (PyTorch's default `GELU()`), named `"gelu"` in configurations as in
    /// PyTorch and HF configs.
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
            Activation::GeluTanh => x.try_gelu_tanh(),
            Activation::GeluErf => x.try_gelu_erf(),
            Activation::Tanh => x.try_tanh(),
            Activation::Sigmoid => x.try_sigmoid(),
            Activation::Silu => x.try_silu(),
        }
    }
}

/// Configuration names (checkpoint metadata, JSON configs), PyTorch's where it has one:
/// `"gelu"` is the exact form, as `torch.nn.GELU()` and HF's `hidden_act: "gelu"`.
const NAMES: &[(Activation, &str)] = &[
    (Activation::Identity, "identity"),
    (Activation::Relu, "relu"),
    (Activation::GeluTanh, "gelu_tanh"),
    (Activation::GeluErf, "gelu"),
    (Activation::Tanh, "tanh"),
    (Activation::Sigmoid, "sigmoid"),
    (Activation::Silu, "silu"),
];

impl Activation {
    /// The configuration name (see [`Activation::from_name`]).
    pub fn name(&self) -> &'static str {
        NAMES.iter().find(|(a, _)| a == self).map(|(_, n)| *n).expect("every activation has a name")
    }

    /// The activation a configuration names, or `None`.
    pub fn from_name(name: &str) -> Option<Activation> {
        NAMES.iter().find(|(_, n)| *n == name).map(|(a, _)| *a)
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

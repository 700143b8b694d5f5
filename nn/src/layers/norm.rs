//! LayerNorm and RMSNorm over the last axis, on the fused kernels.

use crate::init::{Init, Initializer};
use crate::module::Layer;
use crate::Module;
use plies_autodiff::{Result, Tensor};

#[derive(Module)]
pub struct LayerNorm {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    #[module(skip)]
    pub eps: f64,
}

impl LayerNorm {
    /// Affine LayerNorm (weight 1, bias 0) with PyTorch's eps of 1e-5.
    pub fn new(init: &mut Init, dim: usize) -> LayerNorm {
        LayerNorm::with_options(init, dim, 1e-5, true, true)
    }

    pub fn with_options(init: &mut Init, dim: usize, eps: f64, affine: bool, bias: bool) -> LayerNorm {
        LayerNorm {
            weight: affine.then(|| init.param([dim], Initializer::ONES)),
            bias: (affine && bias).then(|| init.param([dim], Initializer::ZEROS)),
            eps,
        }
    }
}

impl Layer for LayerNorm {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        x.try_layer_norm(self.weight.as_ref(), self.bias.as_ref(), self.eps)
    }
}

#[derive(Module)]
pub struct RmsNorm {
    pub weight: Option<Tensor>,
    #[module(skip)]
    pub eps: f64,
}

impl RmsNorm {
    /// RMSNorm with a weight of ones and eps 1e-6 (pass `eps` to the PyTorch twin too: its
    /// default is the dtype's machine epsilon).
    pub fn new(init: &mut Init, dim: usize) -> RmsNorm {
        RmsNorm::with_options(init, dim, 1e-6, true)
    }

    pub fn with_options(init: &mut Init, dim: usize, eps: f64, affine: bool) -> RmsNorm {
        RmsNorm { weight: affine.then(|| init.param([dim], Initializer::ONES)), eps }
    }
}

impl Layer for RmsNorm {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        x.try_rms_norm(self.weight.as_ref(), self.eps)
    }
}

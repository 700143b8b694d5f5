//! Fully connected layer, `y = x W^T + b`, with the weight stored `[out, in]` as in PyTorch.

use crate::init::{Init, Initializer};
use crate::module::{Layer, Module, Scope};
use plies_autodiff::{Error, Result, Tensor};
use std::sync::{Arc, RwLock};

/// Something added to a Linear's output, e.g. a LoRA update `scale * B A x` (plies-peft).
/// Its parameters are visited in the Linear's scope, so it names them itself
/// (`blocks.0.attn.qkv.lora_a.weight`).
pub trait LinearAdapter: Module {
    /// The term added to the output for input rows `x` `[n, in]`; returns `[n, out]`.
    fn try_delta(&self, x: &Tensor) -> Result<Tensor>;
}

pub struct Linear {
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Option<Tensor>,
    adapter: RwLock<Option<Arc<dyn LinearAdapter>>>,
}

impl Linear {
    /// PyTorch's default initialisation (U(±1/sqrt(in)) for weight and bias).
    pub fn new(init: &mut Init, in_features: usize, out_features: usize, bias: bool) -> Linear {
        let b = bias.then_some(Initializer::torch_bias(in_features));
        Linear::with_init(init, in_features, out_features, Initializer::torch_default(), b)
    }

    pub fn with_init(
        init: &mut Init,
        in_features: usize,
        out_features: usize,
        weight: Initializer,
        bias: Option<Initializer>,
    ) -> Linear {
        let w = init.param([out_features, in_features], weight);
        let b = bias.map(|b| init.param([out_features], b));
        Linear::from_tensors(w, b)
    }

    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Linear {
        Linear { weight, bias, adapter: RwLock::new(None) }
    }

    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Attach (or with `None` remove) an adapter whose output is added to this layer's.
    pub fn set_adapter(&self, adapter: Option<Arc<dyn LinearAdapter>>) {
        *self.adapter.write().unwrap() = adapter;
    }

    pub fn adapter(&self) -> Option<Arc<dyn LinearAdapter>> {
        self.adapter.read().unwrap().clone()
    }

    /// `x` reshaped to rows `[n, in]`, checking the last dim.
    pub(crate) fn rows(&self, x: &Tensor, op: &'static str) -> Result<Tensor> {
        let d = x.dims();
        let inf = self.in_features();
        if d.last() != Some(&inf) {
            return Err(Error::ShapeMismatch { op, lhs: x.shape(), rhs: self.weight.shape() });
        }
        if d.len() == 2 {
            return Ok(x.clone());
        }
        x.try_reshape([x.elem_count() / inf.max(1), inf])
    }
}

impl Module for Linear {
    fn visit(&self, s: &mut Scope<'_>) {
        s.param("weight", &self.weight);
        if let Some(b) = &self.bias {
            s.param("bias", b);
        }
        if let Some(a) = self.adapter() {
            a.visit(s);
        }
    }
}

impl Layer for Linear {
    /// `[.., in] -> [.., out]`.
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = self.rows(x, "linear")?;
        // One 2-d gemm over all rows; the transposed weight is a view gemm reads in place.
        let mut y = rows.try_matmul(&self.weight.try_t()?)?;
        if let Some(b) = &self.bias {
            y = y.try_add(b)?;
        }
        if let Some(a) = self.adapter() {
            y = y.try_add(&a.try_delta(&rows)?)?;
        }
        let mut dims = x.dims();
        *dims.last_mut().unwrap() = self.out_features();
        if dims.len() == 2 {
            Ok(y)
        } else {
            y.try_reshape(dims)
        }
    }
}

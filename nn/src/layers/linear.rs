//! Fully connected layer, `y = x W^T + b`, with the weight stored `[out, in]` as in PyTorch.

use crate::init::{Init, Initializer};
use crate::module::{Layer, Module, Scope};
use plies_autodiff::{Error, Result, Tensor};
use std::sync::{Arc, RwLock};

/// A method attached to a Linear that computes the layer's output in its place (plies-peft's
/// LoRA, DoRA and LoRA experts). It receives the layer, so it uses the base output
/// ([`Linear::try_base`]), the weight or the bias as its method needs, and the layer does
/// not know which method is attached. Its parameters are visited in the Linear's scope
/// under names it chooses (PEFT's `lora_A.weight`).
pub trait LinearAdapter: Module {
    /// The adapted output for input rows `x` `[n, in]`; returns `[n, out]`.
    fn try_forward(&self, layer: &Linear, x: &Tensor) -> Result<Tensor>;

    /// The adapted output cut along the output features into parts of `sizes`, part i
    /// multiplied by `scales[i]` (`Linear::try_forward_split`'s contract; the sizes are
    /// checked). By default the full output is sliced, whose backward pads each part's
    /// gradient with zeros to the full width; an adapter that can split its own product
    /// overrides this.
    fn try_forward_split(&self, layer: &Linear, x: &Tensor, sizes: &[usize], scales: &[f64]) -> Result<Vec<Tensor>> {
        split_output(&self.try_forward(layer, x)?, sizes, scales)
    }

    /// True while the adapter leaves the output unchanged (disabled, merged into the
    /// weight, or holding nothing): the layer then computes its output itself and keeps
    /// its fast paths.
    fn is_passthrough(&self) -> bool {
        false
    }
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

    /// Attach (or with `None` remove) the adapter that computes this layer's output.
    pub fn set_adapter(&self, adapter: Option<Arc<dyn LinearAdapter>>) {
        *self.adapter.write().unwrap() = adapter;
    }

    pub fn adapter(&self) -> Option<Arc<dyn LinearAdapter>> {
        self.adapter.read().unwrap().clone()
    }

    /// The adapter, unless none is attached or it passes the base output through.
    fn acting_adapter(&self) -> Option<Arc<dyn LinearAdapter>> {
        self.adapter().filter(|a| !a.is_passthrough())
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

    /// The unadapted output `x W^T` of rows `x` `[n, in]`, plus the bias if `bias`.
    pub fn try_base(&self, x: &Tensor, bias: bool) -> Result<Tensor> {
        // One 2-d gemm over all rows.
        x.try_linear(&self.weight, self.bias.as_ref().filter(|_| bias))
    }

    /// The output of rows `x` `[n, in]` cut along the output features into parts of
    /// `sizes`, part i multiplied by `scales[i]` (e.g. attention's q, k and v with q scaled).
    /// Without an acting adapter each part is its own product with a slice of the weight,
    /// the scale folded into that slice: backward then never materialises zero-padded
    /// copies of the output gradient, which slicing one full output would.
    pub fn try_forward_split(&self, x: &Tensor, sizes: &[usize], scales: &[f64]) -> Result<Vec<Tensor>> {
        let rows = self.rows(x, "linear")?;
        if sizes.len() != scales.len() || sizes.iter().sum::<usize>() != self.out_features() {
            return Err(Error::invalid(
                "linear split",
                format!(
                    "sizes {sizes:?} with {} scales must cover the {} output features",
                    scales.len(),
                    self.out_features()
                ),
            ));
        }
        match self.acting_adapter() {
            Some(a) => a.try_forward_split(self, &rows, sizes, scales),
            None => self.try_base_split(&rows, sizes, scales),
        }
    }

    /// The unadapted output of rows `x` `[n, in]` (bias included) in parts of `sizes`,
    /// part i scaled by `scales[i]`: each part is its own product with a slice of the
    /// weight, the scale folded into that slice. The sizes must cover the output features.
    pub fn try_base_split(&self, rows: &Tensor, sizes: &[usize], scales: &[f64]) -> Result<Vec<Tensor>> {
        let mut out = Vec::with_capacity(sizes.len());
        let mut start = 0;
        for (&n, &s) in sizes.iter().zip(scales) {
            let mut w = self.weight.try_narrow(0, start, n)?;
            let mut b = self.bias.as_ref().map(|b| b.try_narrow(0, start, n)).transpose()?;
            if s != 1.0 {
                w = w.try_mul_scalar(s)?;
                b = b.map(|b| b.try_mul_scalar(s)).transpose()?;
            }
            out.push(rows.try_linear(&w, b.as_ref())?);
            start += n;
        }
        Ok(out)
    }
}

/// `y` `[n, out]` sliced along the output features into parts of `sizes`, part i scaled by
/// `scales[i]`.
pub fn split_output(y: &Tensor, sizes: &[usize], scales: &[f64]) -> Result<Vec<Tensor>> {
    let mut out = Vec::with_capacity(sizes.len());
    let mut start = 0;
    for (&n, &s) in sizes.iter().zip(scales) {
        let part = y.try_narrow(1, start, n)?;
        out.push(if s == 1.0 { part } else { part.try_mul_scalar(s)? });
        start += n;
    }
    Ok(out)
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
        let y = match self.acting_adapter() {
            Some(a) => a.try_forward(self, &rows)?,
            None => self.try_base(&rows, true)?,
        };
        let mut dims = x.dims();
        *dims.last_mut().unwrap() = self.out_features();
        if dims.len() == 2 {
            Ok(y)
        } else {
            y.try_reshape(dims)
        }
    }
}

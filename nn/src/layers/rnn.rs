//! Single-layer recurrent layers over batch-first sequences `[b, t, in]`: an Elman RNN and
//! a GRU, with PyTorch's parameter names (`weight_ih_l0`, ...) and equations.
//!
//! The loop runs step by step, projecting each input slice separately: when the input
//! needs no gradient its slices record nothing, and the weight gradients accumulate per
//! step without materialising zero-padded `[b, t, h]` copies.

use super::Activation;
use crate::init::{Init, Initializer};
use crate::module::{Layer, Module, Scope};
use plies_autodiff::{Error, Result, Tensor};

/// The four parameters of a recurrent cell; `gates` stacked blocks of `hidden` rows.
struct Weights {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Option<Tensor>,
    b_hh: Option<Tensor>,
}

impl Weights {
    /// PyTorch's initialisation: everything U(-1/sqrt(hidden), 1/sqrt(hidden)).
    fn new(init: &mut Init, input: usize, hidden: usize, gates: usize, bias: bool) -> Weights {
        let b = 1.0 / (hidden as f64).sqrt();
        let u = Initializer::Uniform { lo: -b, hi: b };
        Weights {
            w_ih: init.param([gates * hidden, input], u),
            w_hh: init.param([gates * hidden, hidden], u),
            b_ih: bias.then(|| init.param([gates * hidden], u)),
            b_hh: bias.then(|| init.param([gates * hidden], u)),
        }
    }

    fn visit(&self, s: &mut Scope<'_>) {
        s.param("weight_ih_l0", &self.w_ih);
        s.param("weight_hh_l0", &self.w_hh);
        if let (Some(bi), Some(bh)) = (&self.b_ih, &self.b_hh) {
            s.param("bias_ih_l0", bi);
            s.param("bias_hh_l0", bh);
        }
    }

    fn hidden(&self, gates: usize) -> usize {
        self.w_hh.dims()[0] / gates
    }

    /// Check `x` `[b, t, in]` and an optional initial state `[b, hidden]`; returns the zero
    /// state when none is given.
    fn start(&self, op: &'static str, x: &Tensor, h0: Option<&Tensor>, gates: usize) -> Result<Tensor> {
        let d = x.dims();
        let hidden = self.hidden(gates);
        if d.len() != 3 || d[2] != self.w_ih.dims()[1] {
            return Err(Error::ShapeMismatch { op, lhs: x.shape(), rhs: self.w_ih.shape() });
        }
        match h0 {
            Some(h) if h.dims() != [d[0], hidden] => {
                Err(Error::invalid(op, format!("initial state must be [{}, {hidden}], got {}", d[0], h.shape())))
            }
            Some(h) => Ok(h.clone()),
            None => Ok(Tensor::zeros([d[0], hidden], x.dtype(), x.device())),
        }
    }

    /// Run `step(x_t, h) -> h` over time; returns (outputs `[b, t, hidden]`, last state).
    fn run(x: &Tensor, mut h: Tensor, step: impl Fn(&Tensor, &Tensor) -> Result<Tensor>) -> Result<(Tensor, Tensor)> {
        let (b, t, i) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        let mut outs = Vec::with_capacity(t);
        for s in 0..t {
            let xt = x.try_narrow(1, s, 1)?.try_reshape([b, i])?;
            h = step(&xt, &h)?;
            outs.push(h.try_unsqueeze(1)?);
        }
        if outs.is_empty() {
            return Err(Error::invalid("rnn", "empty sequence"));
        }
        Ok((Tensor::try_cat(&outs.iter().collect::<Vec<_>>(), 1)?, h))
    }
}

/// `h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`, act tanh (or ReLU).
pub struct Rnn {
    w: Weights,
    pub nonlinearity: Activation,
}

impl Rnn {
    pub fn new(init: &mut Init, input: usize, hidden: usize) -> Rnn {
        Rnn { w: Weights::new(init, input, hidden, 1, true), nonlinearity: Activation::Tanh }
    }

    pub fn hidden_size(&self) -> usize {
        self.w.hidden(1)
    }

    /// Outputs `[b, t, hidden]` and the last state `[b, hidden]`, from `h0` (zeros if None).
    pub fn try_forward_with(&self, x: &Tensor, h0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let w = &self.w;
        let h = w.start("rnn", x, h0, 1)?;
        Weights::run(x, h, |xt, h| {
            let z = xt.try_linear(&w.w_ih, w.b_ih.as_ref())?.try_add(&h.try_linear(&w.w_hh, w.b_hh.as_ref())?)?;
            self.nonlinearity.try_apply(&z)
        })
    }
}

impl Module for Rnn {
    fn visit(&self, s: &mut Scope<'_>) {
        self.w.visit(s);
    }
}

impl Layer for Rnn {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.try_forward_with(x, None)?.0)
    }
}

/// PyTorch's GRU: gates stacked (r, z, n) in `weight_ih_l0` `[3h, in]`;
/// `r = σ(..), z = σ(..), n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 - z) n + z h`.
pub struct Gru {
    w: Weights,
}

impl Gru {
    pub fn new(init: &mut Init, input: usize, hidden: usize) -> Gru {
        Gru { w: Weights::new(init, input, hidden, 3, true) }
    }

    pub fn hidden_size(&self) -> usize {
        self.w.hidden(3)
    }

    pub fn try_forward_with(&self, x: &Tensor, h0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let w = &self.w;
        let hs = self.hidden_size();
        let h = w.start("gru", x, h0, 3)?;
        Weights::run(x, h, |xt, h| {
            let gi = xt.try_linear(&w.w_ih, w.b_ih.as_ref())?.try_split(&[hs, hs, hs], 1)?;
            let gh = h.try_linear(&w.w_hh, w.b_hh.as_ref())?.try_split(&[hs, hs, hs], 1)?;
            let r = gi[0].try_add(&gh[0])?.try_sigmoid()?;
            let z = gi[1].try_add(&gh[1])?.try_sigmoid()?;
            let n = gi[2].try_add(&r.try_mul(&gh[2])?)?.try_tanh()?;
            // (1 - z) n + z h = n + z (h - n)
            n.try_add(&z.try_mul(&h.try_sub(&n)?)?)
        })
    }
}

impl Module for Gru {
    fn visit(&self, s: &mut Scope<'_>) {
        self.w.visit(s);
    }
}

impl Layer for Gru {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.try_forward_with(x, None)?.0)
    }
}

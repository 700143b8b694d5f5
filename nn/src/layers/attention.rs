//! Causal multi-head self-attention, computed naively: `softmax(q k^T / sqrt(d) + mask) v`
//! with a precomputed additive mask (0 on and below the diagonal, -inf above) and the
//! fused softmax.

use super::{Dropout, Linear};
use crate::init::{Init, Initializer};
use crate::module::{Layer, Module, Scope};
use plies_autodiff::{Array, DType, Device, Error, Result, Tensor};
use std::sync::Mutex;

pub struct CausalSelfAttention {
    /// `[3 d, d]`: the q, k and v projections stacked (GPT-2's `c_attn`).
    pub qkv: Linear,
    pub proj: Linear,
    pub n_head: usize,
    pub attn_dropout: Dropout,
    pub resid_dropout: Dropout,
    mask: Mutex<Option<Array>>,
}

impl CausalSelfAttention {
    /// GPT-2 initialisation: weights N(0, 0.02), biases 0, and the output projection's
    /// std scaled by `proj_std_scale` (1/sqrt(2 n_layer) in a GPT).
    pub fn new(init: &mut Init, d: usize, n_head: usize, dropout: f64, proj_std_scale: f64) -> Self {
        assert!(n_head > 0 && d.is_multiple_of(n_head), "d_model {d} must be a multiple of n_head {n_head}");
        let w = |std: f64| Initializer::Normal { mean: 0.0, std };
        let qkv = Linear::with_init(init, d, 3 * d, w(0.02), Some(Initializer::ZEROS));
        let proj = Linear::with_init(init, d, d, w(0.02 * proj_std_scale), Some(Initializer::ZEROS));
        CausalSelfAttention {
            qkv,
            proj,
            n_head,
            attn_dropout: Dropout::new(init, dropout),
            resid_dropout: Dropout::new(init, dropout),
            mask: Mutex::new(None),
        }
    }

    /// `[t, t]` additive causal mask, cached for the last length, dtype and device used.
    fn mask(&self, t: usize, dtype: DType, device: Device) -> Result<Array> {
        let mut slot = self.mask.lock().map_err(|_| Error::msg("attention: mask lock poisoned"))?;
        if let Some(m) = slot.as_ref() {
            if m.dims() == [t, t] && m.dtype() == dtype && m.device() == device {
                return Ok(m.clone());
            }
        }
        let v: Vec<f64> = (0..t * t).map(|i| if i % t > i / t { f64::NEG_INFINITY } else { 0.0 }).collect();
        let m = Array::from_vec(v, [t, t], Device::Cpu)?.to_dtype(dtype)?.to_device(device)?;
        *slot = Some(m.clone());
        Ok(m)
    }
}

impl Module for CausalSelfAttention {
    fn visit(&self, s: &mut Scope<'_>) {
        s.child("qkv", &self.qkv);
        s.child("proj", &self.proj);
        s.child("attn_dropout", &self.attn_dropout);
        s.child("resid_dropout", &self.resid_dropout);
    }
}

impl Layer for CausalSelfAttention {
    /// `[b, t, d] -> [b, t, d]`.
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let d = self.qkv.in_features();
        if dims.len() != 3 || dims[2] != d {
            return Err(Error::ShapeMismatch { op: "attention", lhs: x.shape(), rhs: self.qkv.weight.shape() });
        }
        let (b, t, h) = (dims[0], dims[1], self.n_head);
        let hd = d / h;
        let rows = x.try_reshape([b * t, d])?;
        let scale = 1.0 / (hd as f64).sqrt();
        // [b*t, d] -> [b, h, t, hd] as a view
        let heads = |y: Tensor| y.try_reshape([b, t, h, hd])?.try_permute(&[0, 2, 1, 3]);
        // The score scale is folded into q's projection.
        let qkv = self.qkv.try_forward_split(&rows, &[d, d, d], &[scale, 1.0, 1.0])?;
        let [q, k, v]: [Tensor; 3] = qkv.try_into().map_err(|_| Error::msg("attention: qkv split"))?;
        let (q, k, v) = (heads(q)?, heads(k)?, heads(v)?);
        let mask = Tensor::new(self.mask(t, x.dtype(), x.device())?);
        let scores = q.try_matmul(&k.try_transpose(-2, -1)?)?.try_add(&mask)?;
        let att = self.attn_dropout.try_forward(&scores.try_softmax(-1)?)?;
        let y = att.try_matmul(&v)?.try_permute(&[0, 2, 1, 3])?.try_reshape([b * t, d])?;
        let y = self.resid_dropout.try_forward(&self.proj.try_forward(&y)?)?;
        y.try_reshape([b, t, d])
    }
}

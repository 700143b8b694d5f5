//! 2-d convolution (NCHW, weight `[out, in, kh, kw]` as in PyTorch) as im2col: one
//! `index_select` gathers every window, one batched matmul applies the filters.

use super::window::{nchw, with_pad_slot, IndexCache, Window};
use crate::init::{Init, Initializer};
use crate::module::Layer;
use crate::Module;
use plies_autodiff::{Error, Result, Tensor};

#[derive(Module)]
pub struct Conv2d {
    /// `[out, in, kh, kw]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Option<Tensor>,
    #[module(skip)]
    pub window: Window,
    #[module(skip)]
    cache: IndexCache,
}

impl Conv2d {
    /// Square kernel, PyTorch's default initialisation.
    pub fn new(init: &mut Init, in_ch: usize, out_ch: usize, kernel: usize, stride: usize, padding: usize) -> Conv2d {
        let window = Window { kernel: (kernel, kernel), stride: (stride, stride), padding: (padding, padding) };
        Conv2d::with_window(init, in_ch, out_ch, window, true)
    }

    pub fn with_window(init: &mut Init, in_ch: usize, out_ch: usize, window: Window, bias: bool) -> Conv2d {
        let (kh, kw) = window.kernel;
        let weight = init.param([out_ch, in_ch, kh, kw], Initializer::torch_default());
        let bias = bias.then(|| init.param([out_ch], Initializer::torch_bias(in_ch * kh * kw)));
        Conv2d { weight, bias, window, cache: IndexCache::default() }
    }
}

impl Layer for Conv2d {
    /// `[n, in, h, w] -> [n, out, oh, ow]`.
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = nchw("conv2d", x)?;
        let wd = self.weight.dims();
        if wd[1] != c {
            return Err(Error::ShapeMismatch { op: "conv2d", lhs: x.shape(), rhs: self.weight.shape() });
        }
        let (o, k) = (wd[0], wd[1] * wd[2] * wd[3]);
        let im = self.cache.get("conv2d", self.window, c, h, w, x.device())?;
        let (oh, ow) = im.out;
        let rows = with_pad_slot(&x.try_reshape([n, c * h * w])?, im.padded, 0.0)?;
        let cols = rows.try_index_select(1, &im.idx)?.try_reshape([n, k, oh * ow])?;
        let mut y = self.weight.try_reshape([o, k])?.try_matmul(&cols)?;
        if let Some(b) = &self.bias {
            y = y.try_add(&b.try_reshape([o, 1])?)?;
        }
        y.try_reshape([n, o, oh, ow])
    }
}

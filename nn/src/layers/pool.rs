//! Max and average pooling over 2-d windows (NCHW), on the same window index as Conv2d.

use super::window::{nchw, with_pad_slot, IndexCache, Window};
use crate::module::{Layer, Module, Scope};
use plies_autodiff::{Result, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PoolKind {
    Max,
    Avg,
}

fn pool(kind: PoolKind, win: Window, cache: &IndexCache, x: &Tensor) -> Result<Tensor> {
    let op = if kind == PoolKind::Max { "max_pool2d" } else { "avg_pool2d" };
    let (n, c, h, w) = nchw(op, x)?;
    let im = cache.get(op, win, 1, h, w, x.device())?;
    let (oh, ow) = im.out;
    let kk = win.kernel.0 * win.kernel.1;
    // Max pooling pads with -inf (padding never wins); average pooling counts padding as 0
    // (PyTorch's count_include_pad=True).
    let fill = if kind == PoolKind::Max { f64::NEG_INFINITY } else { 0.0 };
    let rows = with_pad_slot(&x.try_reshape([n * c, h * w])?, im.padded, fill)?;
    let cols = rows.try_index_select(1, &im.idx)?.try_reshape([n * c, kk, oh * ow])?;
    let y = match kind {
        PoolKind::Max => cols.try_max(1, false)?,
        PoolKind::Avg => cols.try_mean(1, false)?,
    };
    y.try_reshape([n, c, oh, ow])
}

pub struct MaxPool2d {
    pub window: Window,
    cache: IndexCache,
}

impl MaxPool2d {
    /// Square window with stride = kernel and no padding (PyTorch's default).
    pub fn new(kernel: usize) -> MaxPool2d {
        MaxPool2d::with_window(Window { kernel: (kernel, kernel), stride: (kernel, kernel), padding: (0, 0) })
    }

    pub fn with_window(window: Window) -> MaxPool2d {
        MaxPool2d { window, cache: IndexCache::default() }
    }
}

impl Module for MaxPool2d {
    fn visit(&self, _: &mut Scope<'_>) {}
}

impl Layer for MaxPool2d {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        pool(PoolKind::Max, self.window, &self.cache, x)
    }
}

pub struct AvgPool2d {
    pub window: Window,
    cache: IndexCache,
}

impl AvgPool2d {
    pub fn new(kernel: usize) -> AvgPool2d {
        AvgPool2d::with_window(Window { kernel: (kernel, kernel), stride: (kernel, kernel), padding: (0, 0) })
    }

    pub fn with_window(window: Window) -> AvgPool2d {
        AvgPool2d { window, cache: IndexCache::default() }
    }
}

impl Module for AvgPool2d {
    fn visit(&self, _: &mut Scope<'_>) {}
}

impl Layer for AvgPool2d {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        pool(PoolKind::Avg, self.window, &self.cache, x)
    }
}

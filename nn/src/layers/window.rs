//! Sliding windows over images as an index: the positions each output pixel reads, so
//! convolution and pooling are one `index_select` (whose backward is `index_add`) plus a
//! matmul or a reduction. Out-of-image positions point at one extra padding slot appended
//! after the image.

use plies_autodiff::{Device, Error, Result, Tensor};
use std::sync::{Arc, Mutex};

/// Geometry of a 2-d window sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
}

impl Window {
    /// Output size for an `h x w` input, or an error naming the op and the sizes.
    pub fn output(&self, op: &'static str, h: usize, w: usize) -> Result<(usize, usize)> {
        let ((kh, kw), (sh, sw), (ph, pw)) = (self.kernel, self.stride, self.padding);
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 {
            return Err(Error::invalid(
                op,
                format!("kernel {:?} and stride {:?} must be positive", self.kernel, self.stride),
            ));
        }
        if h + 2 * ph < kh || w + 2 * pw < kw {
            return Err(Error::invalid(
                op,
                format!("kernel {:?} is larger than the padded input {}x{}", self.kernel, h + 2 * ph, w + 2 * pw),
            ));
        }
        Ok(((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1))
    }
}

/// A cached window index for one input geometry.
pub(crate) struct Im2col {
    /// i32 positions, ordered (channel, ki, kj, oy, ox), into `[channels * h * w + 1]`.
    pub idx: Tensor,
    pub out: (usize, usize),
    /// Whether any position reads the padding slot.
    pub padded: bool,
}

/// (channels, height, width, device) of the input an index was built for.
type Geometry = (usize, usize, usize, Device);

#[derive(Default)]
pub(crate) struct IndexCache(Mutex<Option<(Geometry, Arc<Im2col>)>>);

impl IndexCache {
    /// The index for `channels` planes of `h x w`, built once per geometry and device.
    pub fn get(
        &self,
        op: &'static str,
        win: Window,
        channels: usize,
        h: usize,
        w: usize,
        device: Device,
    ) -> Result<Arc<Im2col>> {
        let key = (channels, h, w, device);
        let mut slot = self.0.lock().map_err(|_| Error::msg(format!("{op}: index cache lock poisoned")))?;
        if let Some((k, v)) = slot.as_ref() {
            if *k == key {
                return Ok(v.clone());
            }
        }
        let (oh, ow) = win.output(op, h, w)?;
        let ((kh, kw), (sh, sw), (ph, pw)) = (win.kernel, win.stride, win.padding);
        let pad_slot = channels * h * w;
        if pad_slot >= i32::MAX as usize {
            return Err(Error::invalid(op, format!("input of {pad_slot} elements per sample is too large")));
        }
        let mut idx = Vec::with_capacity(channels * kh * kw * oh * ow);
        let mut padded = false;
        for c in 0..channels {
            for i in 0..kh {
                for j in 0..kw {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let (y, x) = ((oy * sh + i) as isize - ph as isize, (ox * sw + j) as isize - pw as isize);
                            if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                                padded = true;
                                idx.push(pad_slot as i32);
                            } else {
                                idx.push((c * h * w + y as usize * w + x as usize) as i32);
                            }
                        }
                    }
                }
            }
        }
        let n = idx.len();
        let idx = Tensor::try_from_vec(idx, [n], device)?;
        let v = Arc::new(Im2col { idx, out: (oh, ow), padded });
        *slot = Some((key, v.clone()));
        Ok(v)
    }
}

/// Rows `[n, len]` with a column of `value` appended when the index reads padding.
pub(crate) fn with_pad_slot(rows: &Tensor, padded: bool, value: f64) -> Result<Tensor> {
    if !padded {
        return Ok(rows.clone());
    }
    let n = rows.dims()[0];
    let pad = Tensor::full([n, 1], value, rows.dtype(), rows.device());
    Tensor::try_cat(&[rows, &pad], 1)
}

/// Check an NCHW input and return its dims.
pub(crate) fn nchw(op: &'static str, x: &Tensor) -> Result<(usize, usize, usize, usize)> {
    let d = x.dims();
    if d.len() != 4 || !x.dtype().is_float() {
        return Err(Error::invalid(
            op,
            format!("expects a float input [batch, channels, height, width], got {}", x.shape()),
        ));
    }
    Ok((d[0], d[1], d[2], d[3]))
}

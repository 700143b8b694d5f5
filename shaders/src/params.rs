//! The parameter block every kernel reads first (see the layout in wgsl/common.wgsl):
//! element count, op code, flags, operand offsets, scalars, and strided layouts, all as
//! u32 words so that one storage binding carries them.

use plies_core::layout::Coalesced;
use plies_core::Layout;

pub(crate) const HEADER: usize = 16;

#[derive(Clone, Debug)]
pub(crate) struct Params {
    words: Vec<u32>,
}

impl Params {
    /// A block for `n` elements (or rows) with rank 0 and no layout yet.
    pub(crate) fn new(n: usize) -> Self {
        let mut words = vec![0u32; HEADER];
        words[0] = n as u32;
        Params { words }
    }

    pub(crate) fn op(mut self, code: u32) -> Self {
        self.words[2] = code;
        self
    }

    pub(crate) fn flags(mut self, f: u32) -> Self {
        self.words[3] = f;
        self
    }

    pub(crate) fn offset(mut self, k: usize, off: usize) -> Self {
        self.words[4 + k] = off as u32;
        self
    }

    pub(crate) fn scalar(mut self, k: usize, v: f32) -> Self {
        self.words[8 + k] = v.to_bits();
        self
    }

    pub(crate) fn extra(mut self, k: usize, v: u32) -> Self {
        self.words[12 + k] = v;
        self
    }

    /// Set one header word.
    pub(crate) fn word(mut self, i: usize, v: u32) -> Self {
        debug_assert!(i < HEADER);
        self.words[i] = v;
        self
    }

    /// Set the rank word alone (for families with their own tail layout).
    pub(crate) fn rank(mut self, r: usize) -> Self {
        self.words[1] = r as u32;
        self
    }

    /// Dims and one set of strides per operand (each `strides[k].len() == dims.len()`).
    pub(crate) fn layout(mut self, dims: &[usize], strides: &[&[usize]]) -> Self {
        debug_assert_eq!(self.words.len(), HEADER, "layout must come first after the header");
        self.words[1] = dims.len() as u32;
        self.words.extend(dims.iter().map(|&d| d as u32));
        for s in strides {
            debug_assert_eq!(s.len(), dims.len());
            self.words.extend(s.iter().map(|&v| v as u32));
        }
        self
    }

    /// Views of one shape, with adjacent dims merged where every view allows it; sets the
    /// operand offsets too.
    pub(crate) fn views(mut self, layouts: &[&Layout]) -> Self {
        let c = Coalesced::new(layouts);
        for (k, &o) in c.offsets.iter().enumerate() {
            self = self.offset(k, o);
        }
        let strides: Vec<&[usize]> = c.strides.iter().map(|s| s.as_slice()).collect();
        self.layout(&c.dims, &strides)
    }

    /// Append raw words after the layout (family-specific tails).
    pub(crate) fn push(mut self, w: impl IntoIterator<Item = u32>) -> Self {
        self.words.extend(w);
        self
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.words)
    }
}

/// Merge adjacent dims of a single strided space (no operand pairing needed), dropping
/// size-1 dims; returns (dims, strides), at least one dim.
pub(crate) fn coalesce_one(dims: &[usize], strides: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut d: Vec<usize> = Vec::new();
    let mut s: Vec<usize> = Vec::new();
    for (&n, &st) in dims.iter().zip(strides) {
        if n == 1 {
            continue;
        }
        match (d.last_mut(), s.last_mut()) {
            (Some(ld), Some(ls)) if *ls == st * n => {
                *ld *= n;
                *ls = st;
            }
            _ => {
                d.push(n);
                s.push(st);
            }
        }
    }
    if d.is_empty() {
        d.push(1);
        s.push(0);
    }
    (d, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesce_merges_dense_runs() {
        assert_eq!(coalesce_one(&[2, 3, 4], &[12, 4, 1]), (vec![24], vec![1]));
        assert_eq!(coalesce_one(&[2, 1, 4], &[4, 9, 1]), (vec![8], vec![1]));
        assert_eq!(coalesce_one(&[3, 2], &[1, 3]), (vec![3, 2], vec![1, 3]));
        assert_eq!(coalesce_one(&[1, 1], &[5, 5]), (vec![1], vec![0]));
    }
}

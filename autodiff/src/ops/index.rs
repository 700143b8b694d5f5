//! Indexing: index_select / embedding, gather, and their adjoints index_add / scatter_add.

use super::infallible;
use crate::Tensor;
use plies_core::{Array, Axis, Error, Result};

impl Tensor {
    /// Slices along `axis` picked by a 1-d i32 index; the gradient is added back with index_add.
    pub fn try_index_select(&self, axis: impl Axis, idx: &Tensor) -> Result<Tensor> {
        let (x, i) = (self.value(), idx.value());
        let a = x.shape().axis(axis, "index_select")?;
        let y = x.index_select(a, &i)?;
        let shape = x.shape().clone();
        Tensor::record("index_select", y, &[self, idx], move |g, _| {
            let zeros = Array::zeros(shape, g.dtype(), g.device())?;
            Ok(vec![Some(zeros.index_add(a, &i, g)?), None])
        })
    }

    /// Rows of a `[vocab, dim]` table for i32 ids of any shape -> `[..ids, dim]`.
    pub fn try_embedding(&self, ids: &Tensor) -> Result<Tensor> {
        if self.rank() != 2 {
            return Err(Error::invalid("embedding", format!("table must be [vocab, dim], got {}", self.shape())));
        }
        let n = ids.elem_count();
        let mut dims = ids.dims();
        dims.push(*self.dims().last().unwrap_or(&0));
        self.try_index_select(0, &ids.try_reshape([n])?)?.try_reshape(dims)
    }

    /// `out[..i..] = self[..idx[..i..]..]` along `axis`.
    pub fn try_gather(&self, axis: impl Axis, idx: &Tensor) -> Result<Tensor> {
        let (x, i) = (self.value(), idx.value());
        let a = x.shape().axis(axis, "gather")?;
        let y = x.gather(a, &i)?;
        let shape = x.shape().clone();
        Tensor::record("gather", y, &[self, idx], move |g, _| {
            let zeros = Array::zeros(shape, g.dtype(), g.device())?;
            Ok(vec![Some(zeros.scatter_add(a, &i, g)?), None])
        })
    }

    /// `self` plus `src` added at the positions `idx` selects along `axis`.
    pub fn try_index_add(&self, axis: impl Axis, idx: &Tensor, src: &Tensor) -> Result<Tensor> {
        let (x, i) = (self.value(), idx.value());
        let a = x.shape().axis(axis, "index_add")?;
        let y = x.index_add(a, &i, &src.value())?;
        Tensor::record("index_add", y, &[self, idx, src], move |g, need| {
            Ok(vec![Some(g.clone()), None, if need[2] { Some(g.index_select(a, &i)?) } else { None }])
        })
    }

    /// `self` plus `src[..i..]` added at `[..idx[..i..]..]` along `axis`.
    pub fn try_scatter_add(&self, axis: impl Axis, idx: &Tensor, src: &Tensor) -> Result<Tensor> {
        let (x, i) = (self.value(), idx.value());
        let a = x.shape().axis(axis, "scatter_add")?;
        let y = x.scatter_add(a, &i, &src.value())?;
        Tensor::record("scatter_add", y, &[self, idx, src], move |g, need| {
            Ok(vec![Some(g.clone()), None, if need[2] { Some(g.gather(a, &i)?) } else { None }])
        })
    }
}

infallible! {
    index_select => try_index_select(axis: impl Axis, idx: &Tensor);
    embedding => try_embedding(ids: &Tensor);
    gather => try_gather(axis: impl Axis, idx: &Tensor);
    index_add => try_index_add(axis: impl Axis, idx: &Tensor, src: &Tensor);
    scatter_add => try_scatter_add(axis: impl Axis, idx: &Tensor, src: &Tensor);
}

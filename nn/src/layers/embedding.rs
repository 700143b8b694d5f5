//! Lookup table: i32 ids of any shape to vectors.

use crate::init::{Init, Initializer};
use crate::module::{Layer, Module, Scope};
use plies_autodiff::{DType, Error, Result, Tensor};
use std::sync::{Arc, RwLock};

/// A method attached to an Embedding that computes its output in its place (plies-peft's
/// LoRA on embeddings), as [`super::LinearAdapter`] does for a Linear.
pub trait EmbeddingAdapter: Module {
    /// The adapted vectors of i32 ids `[..]`; returns `[.., dim]`.
    fn try_forward(&self, layer: &Embedding, ids: &Tensor) -> Result<Tensor>;

    /// True while the adapter leaves the output unchanged (disabled, merged or empty).
    fn is_passthrough(&self) -> bool {
        false
    }
}

pub struct Embedding {
    /// `[num_embeddings, dim]`.
    pub weight: Tensor,
    adapter: RwLock<Option<Arc<dyn EmbeddingAdapter>>>,
}

impl Embedding {
    /// N(0, 1) rows, PyTorch's default.
    pub fn new(init: &mut Init, num_embeddings: usize, dim: usize) -> Embedding {
        Embedding::with_init(init, num_embeddings, dim, Initializer::Normal { mean: 0.0, std: 1.0 })
    }

    pub fn with_init(init: &mut Init, num_embeddings: usize, dim: usize, weight: Initializer) -> Embedding {
        Embedding::from_tensor(init.param([num_embeddings, dim], weight))
    }

    pub fn from_tensor(weight: Tensor) -> Embedding {
        Embedding { weight, adapter: RwLock::new(None) }
    }

    pub fn num_embeddings(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn dim(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Attach (or with `None` remove) the adapter that computes this layer's output.
    pub fn set_adapter(&self, adapter: Option<Arc<dyn EmbeddingAdapter>>) {
        *self.adapter.write().unwrap() = adapter;
    }

    pub fn adapter(&self) -> Option<Arc<dyn EmbeddingAdapter>> {
        self.adapter.read().unwrap().clone()
    }

    /// The unadapted lookup of i32 ids.
    pub fn try_base(&self, ids: &Tensor) -> Result<Tensor> {
        if ids.dtype() != DType::I32 {
            return Err(Error::invalid("embedding", format!("ids must have dtype i32, got {}", ids.dtype())));
        }
        self.weight.try_embedding(ids)
    }
}

impl Module for Embedding {
    fn visit(&self, s: &mut Scope<'_>) {
        s.param("weight", &self.weight);
        if let Some(a) = self.adapter() {
            a.visit(s);
        }
    }
}

impl Layer for Embedding {
    /// i32 ids `[..]` -> `[.., dim]`.
    fn try_forward(&self, ids: &Tensor) -> Result<Tensor> {
        match self.adapter().filter(|a| !a.is_passthrough()) {
            Some(a) => a.try_forward(self, ids),
            None => self.try_base(ids),
        }
    }
}

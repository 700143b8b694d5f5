//! Lookup table: i32 ids of any shape to vectors.

use crate::init::{Init, Initializer};
use crate::module::{Layer, Module, Scope};
use plies_autodiff::{DType, Error, Result, Tensor};

pub struct Embedding {
    /// `[num_embeddings, dim]`.
    pub weight: Tensor,
}

impl Embedding {
    /// N(0, 1) rows, PyTorch's default.
    pub fn new(init: &mut Init, num_embeddings: usize, dim: usize) -> Embedding {
        Embedding::with_init(init, num_embeddings, dim, Initializer::Normal { mean: 0.0, std: 1.0 })
    }

    pub fn with_init(init: &mut Init, num_embeddings: usize, dim: usize, weight: Initializer) -> Embedding {
        Embedding { weight: init.param([num_embeddings, dim], weight) }
    }

    pub fn num_embeddings(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn dim(&self) -> usize {
        self.weight.dims()[1]
    }
}

impl Module for Embedding {
    fn visit(&self, s: &mut Scope<'_>) {
        s.param("weight", &self.weight);
    }
}

impl Layer for Embedding {
    /// i32 ids `[..]` -> `[.., dim]`.
    fn try_forward(&self, ids: &Tensor) -> Result<Tensor> {
        if ids.dtype() != DType::I32 {
            return Err(Error::invalid("embedding", format!("ids must have dtype i32, got {}", ids.dtype())));
        }
        self.weight.try_embedding(ids)
    }
}

//! Pre-norm Transformer blocks and a GPT-style decoder language model.
//!
//! Parameter names match the PyTorch twin in `bench/torch_load_checkpoint.py`:
//! `tok_emb.weight`, `pos_emb.weight`, `blocks.{i}.ln1.{weight,bias}`,
//! `blocks.{i}.attn.qkv.{weight,bias}`, `blocks.{i}.attn.proj.{weight,bias}`,
//! `blocks.{i}.ln2.*`, `blocks.{i}.mlp.fc1.*`, `blocks.{i}.mlp.fc2.*`, `ln_f.*`, `head.*`.
//! Layer indices: embeddings 0, block i is layer i + 1, final norm and head L + 1.

use super::{Activation, CausalSelfAttention, Dropout, Embedding, LayerNorm, Linear};
use crate::init::{Init, Initializer};
use crate::module::{Layer, Scope};
use crate::Module;
use plies_autodiff::{DType, Error, Result, Tensor};

/// Hyper-parameters of a GPT. Saved with checkpoints so the model can be rebuilt.
#[derive(Clone, Debug, PartialEq)]
pub struct GptConfig {
    pub vocab_size: usize,
    /// Maximum sequence length (rows of the learned position table).
    pub context: usize,
    pub d_model: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// Hidden width of the MLP as a multiple of `d_model`.
    pub mlp_ratio: usize,
    pub dropout: f64,
    pub activation: Activation,
    pub ln_eps: f64,
}

impl GptConfig {
    /// The W3 benchmark model: vocab 65, d 128, 4 layers, 4 heads, context 128.
    pub fn char_small() -> GptConfig {
        GptConfig {
            vocab_size: 65,
            context: 128,
            d_model: 128,
            n_layer: 4,
            n_head: 4,
            mlp_ratio: 4,
            dropout: 0.0,
            activation: Activation::GeluTanh,
            ln_eps: 1e-5,
        }
    }

    /// The configuration as a JSON object (stored in checkpoint metadata).
    pub fn to_json(&self) -> String {
        let act = self.activation.name();
        serde_json::json!({
            "model": "gpt",
            "vocab_size": self.vocab_size,
            "context": self.context,
            "d_model": self.d_model,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "mlp_ratio": self.mlp_ratio,
            "dropout": self.dropout,
            "activation": act,
            "ln_eps": self.ln_eps,
        })
        .to_string()
    }

    pub fn from_json(s: &str) -> Result<GptConfig> {
        let bad = |m: String| Error::invalid("GptConfig::from_json", m);
        let v: serde_json::Value = serde_json::from_str(s).map_err(|e| bad(e.to_string()))?;
        let int = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .ok_or_else(|| bad(format!("missing or invalid `{k}`")))
        };
        let float = |k: &str| v.get(k).and_then(|x| x.as_f64()).ok_or_else(|| bad(format!("missing or invalid `{k}`")));
        let name = v.get("activation").and_then(|a| a.as_str()).unwrap_or("gelu_tanh");
        let activation = Activation::from_name(name).ok_or_else(|| bad(format!("unknown activation `{name}`")))?;
        Ok(GptConfig {
            vocab_size: int("vocab_size")?,
            context: int("context")?,
            d_model: int("d_model")?,
            n_layer: int("n_layer")?,
            n_head: int("n_head")?,
            mlp_ratio: int("mlp_ratio")?,
            dropout: float("dropout")?,
            activation,
            ln_eps: float("ln_eps")?,
        })
    }
}

/// The position-wise MLP of a block: fc1 (d -> ratio d), activation, fc2, dropout.
#[derive(Module)]
pub struct FeedForward {
    pub fc1: Linear,
    pub fc2: Linear,
    #[module(skip)]
    pub activation: Activation,
    pub dropout: Dropout,
}

impl Layer for FeedForward {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.activation.try_apply(&self.fc1.try_forward(x)?)?;
        self.dropout.try_forward(&self.fc2.try_forward(&h)?)
    }
}

/// `x + attn(ln1(x))`, then `+ mlp(ln2(x))`.
#[derive(Module)]
pub struct Block {
    pub ln1: LayerNorm,
    pub attn: CausalSelfAttention,
    pub ln2: LayerNorm,
    pub mlp: FeedForward,
}

impl Block {
    pub fn new(init: &mut Init, cfg: &GptConfig) -> Block {
        let d = cfg.d_model;
        let resid_scale = 1.0 / ((2 * cfg.n_layer.max(1)) as f64).sqrt();
        let normal = |std: f64| Initializer::Normal { mean: 0.0, std };
        let ln1 = LayerNorm::with_options(init, d, cfg.ln_eps, true, true);
        let attn = CausalSelfAttention::new(init, d, cfg.n_head, cfg.dropout, resid_scale);
        let ln2 = LayerNorm::with_options(init, d, cfg.ln_eps, true, true);
        let hidden = cfg.mlp_ratio * d;
        let fc1 = Linear::with_init(init, d, hidden, normal(0.02), Some(Initializer::ZEROS));
        let fc2 = Linear::with_init(init, hidden, d, normal(0.02 * resid_scale), Some(Initializer::ZEROS));
        let mlp = FeedForward { fc1, fc2, activation: cfg.activation, dropout: Dropout::new(init, cfg.dropout) };
        Block { ln1, attn, ln2, mlp }
    }
}

impl Layer for Block {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.try_add(&self.attn.try_forward(&self.ln1.try_forward(x)?)?)?;
        x.try_add(&self.mlp.try_forward(&self.ln2.try_forward(&x)?)?)
    }
}

/// A decoder-only language model: token + learned position embeddings, pre-norm blocks,
/// a final LayerNorm and an untied linear head with bias.
pub struct Gpt {
    pub config: GptConfig,
    pub tok_emb: Embedding,
    pub pos_emb: Embedding,
    pub drop: Dropout,
    pub blocks: Vec<Block>,
    pub ln_f: LayerNorm,
    pub head: Linear,
}

impl Gpt {
    /// GPT-2 initialisation: embeddings and weights N(0, 0.02), biases 0, residual output
    /// projections N(0, 0.02 / sqrt(2 n_layer)), LayerNorms (1, 0).
    pub fn new(init: &mut Init, config: GptConfig) -> Gpt {
        let normal = Initializer::Normal { mean: 0.0, std: 0.02 };
        let d = config.d_model;
        let tok_emb = Embedding::with_init(init, config.vocab_size, d, normal);
        let pos_emb = Embedding::with_init(init, config.context, d, normal);
        let drop = Dropout::new(init, config.dropout);
        let blocks = (0..config.n_layer).map(|_| Block::new(init, &config)).collect();
        let ln_f = LayerNorm::with_options(init, d, config.ln_eps, true, true);
        let head = Linear::with_init(init, d, config.vocab_size, normal, Some(Initializer::ZEROS));
        Gpt { config, tok_emb, pos_emb, drop, blocks, ln_f, head }
    }

    /// Append a new block on top (layer-by-layer growth); the final norm and head move up
    /// one layer index. Returns the new block's layer index.
    pub fn push_block(&mut self, init: &mut Init) -> usize {
        self.blocks.push(Block::new(init, &self.config));
        self.config.n_layer = self.blocks.len();
        Gpt::block_layer(self.blocks.len() - 1)
    }

    /// The layer index of block `i` (embeddings are layer 0).
    pub fn block_layer(i: usize) -> usize {
        i + 1
    }

    /// Embeddings of i32 ids `[b, t]` (token + position, then dropout) -> `[b, t, d]`.
    pub fn try_embed(&self, ids: &Tensor) -> Result<Tensor> {
        let dims = ids.dims();
        if dims.len() != 2 || ids.dtype() != DType::I32 {
            return Err(Error::invalid(
                "gpt",
                format!("expects i32 token ids [batch, time], got {} {}", ids.dtype(), ids.shape()),
            ));
        }
        let t = dims[1];
        if t > self.config.context {
            return Err(Error::invalid(
                "gpt",
                format!("sequence length {t} exceeds the context {}", self.config.context),
            ));
        }
        let pos = &self.pos_emb.weight;
        // The full table needs no narrow (whose backward would copy the gradient).
        let pos = if t == self.config.context { pos.clone() } else { pos.try_narrow(0, 0, t)? };
        self.drop.try_forward(&self.tok_emb.try_forward(ids)?.try_add(&pos)?)
    }

    /// Logits `[b, t, vocab]` from hidden states `[b, t, d]`.
    pub fn try_logits(&self, h: &Tensor) -> Result<Tensor> {
        self.head.try_forward(&self.ln_f.try_forward(h)?)
    }
}

impl Module for Gpt {
    fn visit(&self, s: &mut Scope<'_>) {
        s.layer("tok_emb", 0, &self.tok_emb);
        s.layer("pos_emb", 0, &self.pos_emb);
        s.layer("drop", 0, &self.drop);
        for (i, b) in self.blocks.iter().enumerate() {
            s.layer(&format!("blocks.{i}"), Gpt::block_layer(i), b);
        }
        let top = Gpt::block_layer(self.blocks.len());
        s.layer("ln_f", top, &self.ln_f);
        s.layer("head", top, &self.head);
    }
}

impl Layer for Gpt {
    /// i32 ids `[b, t]` -> logits `[b, t, vocab]`.
    fn try_forward(&self, ids: &Tensor) -> Result<Tensor> {
        // Layer indices as `visit` assigns them, for the memory accounting.
        let mut h = {
            let _layer = plies_autodiff::layer_scope(0);
            self.try_embed(ids)?
        };
        for (i, b) in self.blocks.iter().enumerate() {
            let _layer = plies_autodiff::layer_scope(Gpt::block_layer(i));
            h = b.try_forward(&h)?;
        }
        let _layer = plies_autodiff::layer_scope(Gpt::block_layer(self.blocks.len()));
        self.try_logits(&h)
    }
}

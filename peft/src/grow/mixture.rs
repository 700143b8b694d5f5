//! Composition without training: models that share the frozen glyph substrate (same
//! vocabulary, same embedding bits) combine into one whose logits are the mean of theirs.
//! No router and no new parameter: the mixture is its members, visited as layers
//! `members.{i}`, so it saves, loads, freezes and evaluates like any module.

use plies_autodiff::{Error, Result, Tensor};
use plies_nn::layers::Gpt;
use plies_nn::{Layer, Module, Scope};

pub struct LogitMixture {
    pub members: Vec<Gpt>,
}

impl LogitMixture {
    /// Refuses fewer than one member, different vocabularies or contexts, and token
    /// embeddings that are not bit-for-bit the same (not one substrate).
    pub fn new(members: Vec<Gpt>) -> Result<LogitMixture> {
        let op = "LogitMixture::new";
        let Some(first) = members.first() else {
            return Err(Error::invalid(op, "needs at least one member".to_string()));
        };
        let bits = |g: &Gpt| {
            g.tok_emb.weight.value().to_vec::<f32>().map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
        };
        let base = bits(first)?;
        for (i, m) in members.iter().enumerate().skip(1) {
            if m.config.vocab_size != first.config.vocab_size || m.config.context != first.config.context {
                return Err(Error::invalid(
                    op,
                    format!(
                        "member {i} has vocabulary {} and context {}, member 0 has {} and {}",
                        m.config.vocab_size, m.config.context, first.config.vocab_size, first.config.context
                    ),
                ));
            }
            if bits(m)? != base {
                return Err(Error::invalid(
                    op,
                    format!("member {i}'s token embedding differs from member 0's: not one substrate"),
                ));
            }
        }
        Ok(LogitMixture { members })
    }
}

impl Module for LogitMixture {
    fn visit(&self, s: &mut Scope<'_>) {
        for (i, m) in self.members.iter().enumerate() {
            s.layer(&format!("members.{i}"), i, m);
        }
    }
}

impl Layer for LogitMixture {
    /// i32 ids `[b, t]` -> the members' mean logits `[b, t, vocab]`.
    fn try_forward(&self, ids: &Tensor) -> Result<Tensor> {
        let Some((first, rest)) = self.members.split_first() else {
            return Err(Error::invalid("LogitMixture", "has no members".to_string()));
        };
        let mut sum = first.try_forward(ids)?;
        for m in rest {
            sum = sum.try_add(&m.try_forward(ids)?)?;
        }
        sum.try_mul_scalar(1.0 / self.members.len() as f64)
    }
}

//! Layer-by-layer growth on a frozen glyph substrate (Bochkov 2025; METHODS.md section 4).
//!
//! - [`substrate`]: token embeddings that are never trained, built from each character's
//!   8x8 bitmap ([`glyphs`]), rotated by their PCA over the vocabulary ([`eigen`]).
//! - [`growth`]: stack blocks on a model a few at a time; each stage trains only its new
//!   blocks and the output head while everything below stays frozen.
//! - [`mixture`]: models sharing the substrate combine into one whose logits are the mean of
//!   theirs, with no training.

pub mod eigen;
pub mod glyphs;
pub mod substrate;

pub use glyphs::{glyph_bits, glyph_vector, GlyphSource};
pub use substrate::{freeze_substrate, glyph_embedding, glyph_gpt, glyph_table, EXTEND_SEED};
pub mod growth;
pub mod mixture;

pub use growth::{grow, lm_loss, lm_step, load_stage, save_stage, StageCost, STAGE_KEY};
pub use mixture::LogitMixture;

#[cfg(test)]
mod tests;

//! The frozen glyph substrate: one fixed, unit-norm vector per character, built from the
//! characters' bitmaps, as the token embedding of a model that never trains it.
//!
//! Rule, for a vocabulary of n >= 2 distinct characters and a model width d:
//! 1. Each character's 64 bits ([`glyph_vector`], with its fallback) form a row of X [n, 64].
//! 2. PCA over the vocabulary: centre X by its column means, C = Xcᵀ Xc / n, eigenvectors V of
//!    C by Jacobi in f64 ([`symmetric_eigen`]), sorted by falling eigenvalue, each with its
//!    largest component positive. Z = Xc V: the glyphs in their principal axes. Centring is
//!    what gives the blank space a direction (minus the mean glyph) instead of a zero row.
//! 3. Width: d <= 64 keeps the first d components of Z. d > 64 appends Z R, R [64, d - 64]
//!    with N(0, 1/64) entries from a SplitMix64 stream seeded by [`EXTEND_SEED`] (Box-Muller,
//!    in f64): a fixed random projection, which adds no information but spreads the same 64
//!    numbers over the extra width, so every coordinate of the model sees the glyph.
//! 4. Each row is divided by its L2 norm, and the table is cast to the model's dtype.

use super::eigen::symmetric_eigen;
use super::glyphs::{glyph_vector, splitmix64};
use plies_autodiff::{Array, DType, Device, Error, Result, Tensor};
use plies_nn::layers::{Embedding, Gpt, GptConfig};
use plies_nn::{Init, Module};

/// Seed of the projection that widens the substrate beyond 64 dimensions.
pub const EXTEND_SEED: u64 = 0x5eed_6c79_7068_0064;

/// The substrate table, row-major `[chars.len(), dim]`, in f64.
pub fn glyph_table(chars: &[char], dim: usize) -> Result<Vec<f64>> {
    let op = "glyph_table";
    let n = chars.len();
    if n < 2 || dim == 0 {
        return Err(Error::invalid(op, format!("needs at least 2 characters and a width > 0, got {n} and {dim}")));
    }
    let mut sorted = chars.to_vec();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::invalid(op, format!("character {:?} appears twice in the vocabulary", w[0])));
    }
    let x: Vec<[f64; 64]> = chars.iter().map(|&c| glyph_vector(c)).collect();
    let mean: [f64; 64] = std::array::from_fn(|j| x.iter().map(|r| r[j]).sum::<f64>() / n as f64);
    let xc: Vec<[f64; 64]> = x.iter().map(|r| std::array::from_fn(|j| r[j] - mean[j])).collect();
    let mut cov = vec![0.0; 64 * 64];
    for r in &xc {
        for i in 0..64 {
            for j in 0..64 {
                cov[i * 64 + j] += r[i] * r[j] / n as f64;
            }
        }
    }
    let (_, v) = symmetric_eigen(&cov, 64);
    let z: Vec<Vec<f64>> =
        xc.iter().map(|r| (0..64).map(|k| (0..64).map(|i| r[i] * v[i * 64 + k]).sum()).collect()).collect();
    let extra = dim.saturating_sub(64);
    let proj = gaussian(64 * extra, EXTEND_SEED, 1.0 / 8.0);
    let mut out = Vec::with_capacity(n * dim);
    for (row, c) in z.iter().zip(chars) {
        let mut e: Vec<f64> = row[..dim.min(64)].to_vec();
        e.extend((0..extra).map(|k| (0..64).map(|i| row[i] * proj[i * extra + k]).sum::<f64>()));
        let norm = e.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm < 1e-12 {
            return Err(Error::invalid(
                op,
                format!("character {c:?} has no component in the first {dim} principal axes"),
            ));
        }
        out.extend(e.iter().map(|a| a / norm));
    }
    Ok(out)
}

/// `len` N(0, std²) values from SplitMix64 by Box-Muller: fixed for a seed, on any machine.
fn gaussian(len: usize, seed: u64, std: f64) -> Vec<f64> {
    let mut state = seed;
    let mut uniform = || {
        state = state.wrapping_add(1);
        // 53 random bits in (0, 1]: never 0, so the logarithm is finite.
        ((splitmix64(state) >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    };
    let mut out = Vec::with_capacity(len + 1);
    while out.len() < len {
        let (u1, u2) = (uniform(), uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let a = 2.0 * std::f64::consts::PI * u2;
        out.extend([r * a.cos() * std, r * a.sin() * std]);
    }
    out.truncate(len);
    out
}

/// The substrate as an Embedding whose weight is a constant (`requires_grad` off): optimizers
/// never see it, yet it is visited, saved and loaded like any parameter.
pub fn glyph_embedding(chars: &[char], dim: usize, dtype: DType, device: Device) -> Result<Embedding> {
    let table = glyph_table(chars, dim)?;
    let value = Array::from_vec(table, [chars.len(), dim], Device::Cpu)?.to_dtype(dtype)?.to_device(device)?;
    Ok(Embedding::from_tensor(Tensor::new(value)))
}

/// A GPT whose token embedding is the frozen glyph substrate of `chars` (its vocabulary, in id
/// order); everything else as `Gpt::new`.
pub fn glyph_gpt(init: &mut Init, config: GptConfig, chars: &[char], dtype: DType, device: Device) -> Result<Gpt> {
    if chars.len() != config.vocab_size {
        return Err(Error::invalid(
            "glyph_gpt",
            format!("{} characters for a vocabulary of {}", chars.len(), config.vocab_size),
        ));
    }
    let d = config.d_model;
    let mut gpt = Gpt::new(init, config);
    gpt.tok_emb = glyph_embedding(chars, d, dtype, device)?;
    Ok(gpt)
}

/// Turn a loaded model's token embedding back into the frozen substrate (a checkpoint stores
/// values, and `load_gpt` rebuilds every parameter trainable).
pub fn freeze_substrate(gpt: &Gpt) -> Result<usize> {
    gpt.freeze("tok_emb")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grow::glyphs::{glyph_bits, GlyphSource};

    fn vocab() -> Vec<char> {
        // Shakespeare's characters plus ones the font lacks (newline, no-break space, Omega).
        let mut v: Vec<char> =
            "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\u{a0}Ω".chars().collect();
        v.sort_unstable();
        v
    }

    fn rows(t: &[f64], d: usize) -> Vec<&[f64]> {
        t.chunks(d).collect()
    }

    #[test]
    fn deterministic_unit_norm_and_distinct_at_every_width_rule() {
        let chars = vocab();
        assert!(chars.iter().filter(|&&c| glyph_bits(c).1 == GlyphSource::Fallback).count() >= 3);
        for d in [16, 64, 96] {
            let a = glyph_table(&chars, d).unwrap();
            assert_eq!(a, glyph_table(&chars, d).unwrap(), "width {d}: two calls differ");
            let r = rows(&a, d);
            for (i, row) in r.iter().enumerate() {
                let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
                assert!((norm - 1.0).abs() < 1e-12, "width {d}: row {i} ({:?}) has norm {norm}", chars[i]);
                for (j, other) in r.iter().enumerate().take(i) {
                    let dist: f64 = row.iter().zip(*other).map(|(x, y)| (x - y).abs()).sum();
                    assert!(dist > 1e-3, "width {d}: {:?} and {:?} share a row", chars[i], chars[j]);
                }
            }
        }
    }

    #[test]
    fn narrow_widths_keep_the_leading_principal_components() {
        let chars = vocab();
        let (wide, narrow) = (glyph_table(&chars, 64).unwrap(), glyph_table(&chars, 8).unwrap());
        for (w, n) in rows(&wide, 64).iter().zip(rows(&narrow, 8)) {
            let s = n[0] / w[0];
            for k in 0..8 {
                assert!((w[k] * s - n[k]).abs() < 1e-9, "component {k}: {} vs {}", w[k] * s, n[k]);
            }
        }
        // Principal axes: the first component varies more over the vocabulary than the last.
        let var = |k: usize| rows(&wide, 64).iter().map(|r| r[k] * r[k]).sum::<f64>();
        assert!(var(0) > var(40), "{} <= {}", var(0), var(40));
    }

    #[test]
    fn the_embedding_is_frozen_and_refuses_bad_vocabularies() {
        let chars = vocab();
        let e = glyph_embedding(&chars, 32, DType::F32, Device::Cpu).unwrap();
        assert!(!e.weight.requires_grad());
        assert_eq!(e.weight.dims(), &[chars.len(), 32]);
        assert_eq!(e.named_parameters().len(), 1);
        assert!(glyph_table(&['a'], 8).is_err());
        let err = glyph_table(&['a', 'b', 'a'], 8).unwrap_err().to_string();
        assert!(err.contains("'a'"), "{err}");
    }
}

//! Growth and mixture on a tiny GPT over a made-up text.

use super::*;
use plies_autodiff::rng::Rng;
use plies_autodiff::{no_grad, Array, DType, Device};
use plies_nn::data::text::CharDataset;
use plies_nn::layers::{Activation, Gpt, GptConfig};
use plies_nn::optim::{Adam, AdamConfig};
use plies_nn::{Init, Layer, Module};
use std::collections::HashMap;

const TEXT: &str = "to be or not to be, that is the question:\nwhether 'tis nobler in the mind to suffer\n";

fn config(vocab: usize) -> GptConfig {
    GptConfig {
        vocab_size: vocab,
        context: 8,
        d_model: 16,
        n_layer: 0,
        n_head: 2,
        mlp_ratio: 2,
        dropout: 0.0,
        activation: Activation::GeluTanh,
        ln_eps: 1e-5,
    }
}

fn seed_model(data: &CharDataset, seed: u64) -> (Gpt, Init) {
    let mut init = Init::new(seed);
    let gpt = glyph_gpt(&mut init, config(data.vocab_size()), data.vocab().chars(), DType::F32, Device::Cpu).unwrap();
    (gpt, init)
}

fn train(
    model: &mut Gpt,
    init: &mut Init,
    data: &CharDataset,
    blocks: usize,
    steps: usize,
    rng: &mut Rng,
) -> StageCost {
    let (_, params) = grow(model, init, blocks).unwrap();
    let mut opt = Adam::new(params, AdamConfig::adamw(1e-2, 0.1)).unwrap();
    for _ in 0..steps {
        let batch = data.random_batch(4, 8, rng, Device::Cpu).unwrap();
        lm_step(model, &mut opt, &batch).unwrap();
    }
    StageCost::of(model, &opt)
}

fn values(model: &dyn Module, prefix: &str) -> Vec<(String, Vec<u32>)> {
    let bits = |a: &Array| a.to_vec::<f32>().unwrap().iter().map(|x| x.to_bits()).collect();
    model.state_dict().iter().filter(|(n, _)| n.starts_with(prefix)).map(|(n, a)| (n.clone(), bits(a))).collect()
}

#[test]
fn a_stage_leaves_everything_below_its_blocks_bit_for_bit_unchanged() {
    let data = CharDataset::from_text(TEXT).unwrap();
    let (mut model, mut init) = seed_model(&data, 3);
    let mut rng = Rng::new(7);
    let first = train(&mut model, &mut init, &data, 2, 3, &mut rng);
    let below: Vec<_> = ["tok_emb", "pos_emb", "blocks.0", "blocks.1"].iter().flat_map(|p| values(&model, p)).collect();
    let (head, fc) = (values(&model, "head"), values(&model, "blocks.2"));
    assert!(fc.is_empty());
    let second = train(&mut model, &mut init, &data, 2, 3, &mut rng);
    let after: Vec<_> = ["tok_emb", "pos_emb", "blocks.0", "blocks.1"].iter().flat_map(|p| values(&model, p)).collect();
    assert_eq!(below.len(), after.len());
    for ((name, a), (_, b)) in below.iter().zip(&after) {
        assert!(a == b, "`{name}` changed during stage 2");
    }
    assert_ne!(head, values(&model, "head"), "the head did not train in stage 2");
    assert_eq!(model.blocks.len(), 4);
    // The accounting: stage 2 trains two blocks plus the head, stage 1 also the positions.
    let block = model.blocks[0].num_params();
    let top = model.ln_f.num_params() + model.head.num_params();
    assert_eq!(second.trainable, 2 * block + top);
    assert_eq!(first.trainable, 2 * block + top + model.pos_emb.num_params());
    assert_eq!(second.layers[1].trainable, 0);
    assert_eq!(second.layers[1].optimizer_bytes, 0);
    assert_eq!(second.layers[3].optimizer_bytes, 2 * 4 * block, "Adam holds two f32 moments");
    assert!(second.train_bytes > 0 && second.frozen_bytes > 2 * 4 * block);
}

#[test]
fn a_stage_checkpoint_reloads_the_same_model_with_the_substrate_frozen() {
    let data = CharDataset::from_text(TEXT).unwrap();
    let (mut model, mut init) = seed_model(&data, 5);
    let mut rng = Rng::new(1);
    train(&mut model, &mut init, &data, 1, 2, &mut rng);
    let dir = std::env::temp_dir().join(format!("plies-grow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = save_stage(&model, &dir, 1, &HashMap::new()).unwrap();
    let (back, meta) = load_stage(&path, &mut Init::new(99)).unwrap();
    assert_eq!(meta.get(STAGE_KEY).map(String::as_str), Some("1"));
    assert!(!back.tok_emb.weight.requires_grad());
    assert_eq!(values(&model, ""), values(&back, ""));
    let batch = data.random_batch(2, 8, &mut rng, Device::Cpu).unwrap();
    let (a, b) = no_grad(|| (model.forward(&batch.inputs), back.forward(&batch.inputs)));
    assert_eq!(a.to_vec::<f32>(), b.to_vec::<f32>());
    std::fs::remove_dir_all(&dir).unwrap();
}

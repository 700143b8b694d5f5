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

#[test]
fn the_mixture_outputs_the_mean_of_its_members_logits_and_saves_like_a_module() {
    let data = CharDataset::from_text(TEXT).unwrap();
    let mut rng = Rng::new(2);
    let members: Vec<Gpt> = [11, 12, 13]
        .iter()
        .map(|&seed| {
            let (mut m, mut init) = seed_model(&data, seed);
            train(&mut m, &mut init, &data, 1, 2, &mut rng);
            m
        })
        .collect();
    let batch = data.random_batch(2, 8, &mut rng, Device::Cpu).unwrap();
    let outs: Vec<Vec<f32>> = members.iter().map(|m| no_grad(|| m.forward(&batch.inputs)).to_vec()).collect();
    let mix = LogitMixture::new(members).unwrap();
    let got: Vec<f32> = no_grad(|| mix.forward(&batch.inputs)).to_vec();
    assert_eq!(got.len(), outs[0].len());
    for (k, g) in got.iter().enumerate() {
        let want = outs.iter().map(|o| o[k] as f64).sum::<f64>() / 3.0;
        assert!((*g as f64 - want).abs() < 1e-5, "logit {k}: {g} vs mean {want}");
    }
    assert!(outs[0] != outs[1], "members should differ for the mean to mean something");
    // Saved and loaded as one module: a fresh mixture of untrained members gets the same output.
    let path = std::env::temp_dir().join(format!("plies-mix-{}.safetensors", std::process::id()));
    plies_nn::checkpoint::save_model(&mix, &path, &HashMap::new()).unwrap();
    assert!(mix.named_parameters().iter().any(|p| p.name == "members.2.head.weight"));
    let fresh: Vec<Gpt> = (0..3).map(|_| seed_model(&data, 40).0).collect();
    let mut fresh_init = Init::new(0);
    let fresh: Vec<Gpt> = fresh
        .into_iter()
        .map(|mut m| {
            m.push_block(&mut fresh_init);
            m
        })
        .collect();
    let back = LogitMixture::new(fresh).unwrap();
    plies_nn::checkpoint::load_model(&back, &path).unwrap();
    assert_eq!(no_grad(|| back.forward(&batch.inputs)).to_vec::<f32>(), got);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn the_mixture_refuses_members_on_different_substrates() {
    let data = CharDataset::from_text(TEXT).unwrap();
    let other = CharDataset::from_text("a different text with other letters: XYZ!").unwrap();
    let (a, _) = seed_model(&data, 1);
    let (b, _) = seed_model(&other, 1);
    assert!(LogitMixture::new(vec![a, b]).is_err());
    assert!(LogitMixture::new(vec![]).is_err());
    let (mut c, mut init) = seed_model(&data, 1);
    c.tok_emb = plies_nn::layers::Embedding::new(&mut init, data.vocab_size(), 16);
    let err = LogitMixture::new(vec![seed_model(&data, 2).0, c]).err().unwrap().to_string();
    assert!(err.contains("member 1"), "{err}");
}

//! Names, layer indices, counts, freezing and modes of the Module trait.

use plies_autodiff::{Device, Tensor};
use plies_nn::layers::*;
use plies_nn::optim::{Adam, AdamConfig, Optimizer};
use plies_nn::{Init, Layer, Module};
use std::sync::Arc;

fn w3() -> Gpt {
    Gpt::new(&mut Init::new(0), GptConfig::char_small())
}

#[test]
fn w3_has_the_benchmark_parameter_count() {
    let g = w3();
    assert_eq!(g.num_params(), 826_433);
    assert_eq!(g.num_trainable_params(), 826_433);
    assert_eq!(g.named_parameters().len(), 2 + 4 * 12 + 2 + 2);
}

#[test]
fn gpt_names_and_layers_are_pytorch_style() {
    let g = w3();
    let ps = g.named_parameters();
    let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(&names[..4], ["tok_emb.weight", "pos_emb.weight", "blocks.0.ln1.weight", "blocks.0.ln1.bias"]);
    assert_eq!(
        &names[4..14],
        [
            "blocks.0.attn.qkv.weight",
            "blocks.0.attn.qkv.bias",
            "blocks.0.attn.proj.weight",
            "blocks.0.attn.proj.bias",
            "blocks.0.ln2.weight",
            "blocks.0.ln2.bias",
            "blocks.0.mlp.fc1.weight",
            "blocks.0.mlp.fc1.bias",
            "blocks.0.mlp.fc2.weight",
            "blocks.0.mlp.fc2.bias",
        ]
    );
    assert_eq!(&names[names.len() - 4..], ["ln_f.weight", "ln_f.bias", "head.weight", "head.bias"]);
    let layer = |n: &str| ps.iter().find(|p| p.name == n).unwrap().layer;
    assert_eq!(layer("tok_emb.weight"), 0);
    assert_eq!(layer("blocks.0.attn.qkv.weight"), 1);
    assert_eq!(layer("blocks.3.mlp.fc2.bias"), 4);
    assert_eq!(layer("head.weight"), 5);
    assert_eq!(g.num_layers(), 6);
    // Linear weights are [out, in].
    assert_eq!(ps.iter().find(|p| p.name == "blocks.0.attn.qkv.weight").unwrap().tensor.dims(), [384, 128]);
    let stats = g.layer_stats();
    assert_eq!(stats.iter().map(|s| s.params).sum::<usize>(), 826_433);
    assert_eq!(stats[0].params, 65 * 128 + 128 * 128);
    assert_eq!(stats[2].params, 198_272);
    assert_eq!(stats[2].param_bytes, 198_272 * 4);
    assert_eq!(stats[5].params, 256 + 128 * 65 + 65);
}

#[test]
fn sequential_and_mlp_names() {
    let mut i = Init::new(1);
    let s = Sequential::new().push(Linear::new(&mut i, 2, 3, true)).push(Activation::Relu).push(Mlp::new(
        &mut i,
        &[3, 4, 1],
        Activation::Tanh,
    ));
    let ps = s.named_parameters();
    let got: Vec<(&str, usize)> = ps.iter().map(|p| (p.name.as_str(), p.layer)).collect();
    // The outermost container assigns layers: the inner MLP's Linears share layer 2.
    assert_eq!(
        got,
        [
            ("0.weight", 0),
            ("0.bias", 0),
            ("2.layers.0.weight", 2),
            ("2.layers.0.bias", 2),
            ("2.layers.1.weight", 2),
            ("2.layers.1.bias", 2)
        ]
    );
    let m = Mlp::new(&mut i, &[64, 256, 256, 10], Activation::Relu);
    let layers: Vec<usize> = m.named_parameters().iter().map(|p| p.layer).collect();
    assert_eq!(layers, [0, 0, 1, 1, 2, 2]);
    assert_eq!(m.num_params(), 64 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10);
}

#[test]
fn freezing_by_pattern_and_layer() {
    let g = Gpt::new(&mut Init::new(0), GptConfig { n_layer: 2, ..GptConfig::char_small() });
    let total = g.num_params();
    assert_eq!(g.freeze("blocks.*.attn").unwrap(), 8);
    assert_eq!(g.num_trainable_params(), total - 2 * (49_536 + 16_512));
    assert_eq!(g.freeze_layer(0).unwrap(), 2);
    assert!(!g.named_parameters()[0].tensor.requires_grad());
    g.unfreeze("*").unwrap();
    assert_eq!(g.num_trainable_params(), total);
    // Typos are errors, not silent no-ops.
    let e = g.freeze("blokcs.0").unwrap_err().to_string();
    assert!(e.contains("pattern `blokcs.0` matches no parameter"), "{e}");
    let e = g.freeze_layer(9).unwrap_err().to_string();
    assert!(e.contains("layer 9 has no parameters (the module has 4 layers)"), "{e}");

    // Frozen parameters get no gradient; the others do.
    g.freeze_layer(1).unwrap();
    let ids = Tensor::from_vec(vec![1i32, 2, 3, 4], [1, 4], Device::Cpu);
    let loss = g.forward(&ids).sum_all();
    loss.backward().unwrap();
    for p in g.named_parameters() {
        assert_eq!(p.tensor.grad().is_some(), p.layer != 1, "{}", p.name);
    }
    let stats = g.layer_stats();
    assert_eq!(stats[1].trainable, 0);
    assert_eq!(stats[1].grad_bytes, 0);
    assert_eq!(stats[2].grad_bytes, stats[2].param_bytes);
    g.zero_grad();
    assert!(g.layer_stats().iter().all(|s| s.grad_bytes == 0));
}

#[test]
fn train_and_eval_reach_every_dropout() {
    let g = Gpt::new(&mut Init::new(0), GptConfig { n_layer: 2, dropout: 0.1, ..GptConfig::char_small() });
    assert!(g.is_training());
    g.eval();
    assert!(!g.is_training());
    assert!(!g.blocks[1].attn.attn_dropout.is_training());
    let ids = Tensor::from_vec(vec![1i32, 2, 3], [1, 3], Device::Cpu);
    assert_eq!(g.forward(&ids).to_vec::<f32>(), g.forward(&ids).to_vec::<f32>(), "eval is deterministic");
    g.train(true);
    assert!(g.blocks[0].mlp.dropout.is_training());
    assert_ne!(g.forward(&ids).to_vec::<f32>(), g.forward(&ids).to_vec::<f32>());
}

/// A LoRA-like adapter: the base output plus `x A^T B^T`, with its own parameters named
/// under the Linear.
struct LowRank {
    a: Tensor,
    b: Tensor,
}

impl Module for LowRank {
    fn visit(&self, s: &mut plies_nn::Scope<'_>) {
        s.param("lora_a.weight", &self.a);
        s.param("lora_b.weight", &self.b);
    }
}

impl LinearAdapter for LowRank {
    fn try_forward(&self, layer: &Linear, x: &Tensor) -> plies_autodiff::Result<Tensor> {
        let delta = x.try_matmul(&self.a.try_t()?)?.try_matmul(&self.b.try_t()?)?;
        layer.try_base(x, true)?.try_add(&delta)
    }
}

#[test]
fn modules_can_be_found_and_adapted() {
    let g = Gpt::new(&mut Init::new(0), GptConfig { n_layer: 2, ..GptConfig::char_small() });
    let mut linears = Vec::new();
    g.for_each_module(&mut |path, m| {
        if m.as_any().downcast_ref::<Linear>().is_some() {
            linears.push(path.to_string());
        }
    });
    assert_eq!(linears.len(), 2 * 4 + 1);
    assert_eq!(linears[0], "blocks.0.attn.qkv");

    let ids = Tensor::from_vec(vec![1i32, 2, 3], [1, 3], Device::Cpu);
    let before = g.forward(&ids).to_vec::<f32>();
    g.freeze("*").unwrap();
    let mut init = Init::new(5);
    let fc1 = &g.blocks[1].mlp.fc1;
    let a = init.param([2, 128], plies_nn::Initializer::Normal { mean: 0.0, std: 0.1 });
    let b = init.param([512, 2], plies_nn::Initializer::ZEROS);
    fc1.set_adapter(Some(Arc::new(LowRank { a, b: b.clone() })));
    let trainable: Vec<String> = g.trainable_parameters().into_iter().map(|p| p.name).collect();
    assert_eq!(trainable, ["blocks.1.mlp.fc1.lora_a.weight", "blocks.1.mlp.fc1.lora_b.weight"]);
    // B = 0: the adapted model computes the same function.
    assert_eq!(g.forward(&ids).to_vec::<f32>(), before);
    g.forward(&ids).sum_all().backward().unwrap();
    assert!(b.grad().is_some());
    assert!(g.blocks[1].mlp.fc1.weight.grad().is_none());
    // Byte accounting sees the adapter's optimizer state in the block's layer.
    let mut opt = Adam::new(g.trainable_parameters(), AdamConfig::adamw(1e-3, 0.0)).unwrap();
    opt.step().unwrap();
    let mut stats = g.layer_stats();
    opt.add_state_bytes(&mut stats);
    assert_eq!(stats[2].optimizer_bytes, 2 * 4 * (2 * 128 + 512 * 2));
    assert_eq!(stats[1].optimizer_bytes, 0);
    assert_ne!(g.forward(&ids).to_vec::<f32>(), before);
}

#[test]
fn growth_adds_a_block_and_trains_only_the_top() {
    let mut g = Gpt::new(&mut Init::new(0), GptConfig { n_layer: 1, ..GptConfig::char_small() });
    g.freeze("*").unwrap();
    let layer = g.push_block(&mut Init::new(1));
    assert_eq!((layer, g.config.n_layer, g.num_layers()), (2, 2, 4));
    g.unfreeze("head").unwrap();
    assert_eq!(g.unfreeze_layer(layer).unwrap(), 12);
    let ids = Tensor::from_vec(vec![1i32, 2, 3], [1, 3], Device::Cpu);
    g.forward(&ids).sum_all().backward().unwrap();
    let with_grad: Vec<usize> =
        g.named_parameters().iter().filter(|p| p.tensor.grad().is_some()).map(|p| p.layer).collect();
    assert_eq!(with_grad.len(), 12 + 2);
    assert!(with_grad.iter().all(|&l| l >= 2));
}

#[test]
fn to_device_moves_parameters_and_names_the_one_that_fails() {
    let m = Mlp::new(&mut Init::new(0), &[3, 4, 2], Activation::Relu);
    assert_eq!(m.device().unwrap(), Some(Device::Cpu));
    // Already there: values and gradients stay.
    m.forward(&Tensor::ones([2, 3], plies_autodiff::DType::F32, Device::Cpu)).sum_all().backward().unwrap();
    let before: Vec<Vec<f32>> = m.parameters().iter().map(|p| p.to_vec()).collect();
    m.to_device(Device::Cpu).unwrap();
    assert!(m.parameters().iter().all(|p| p.grad().is_some()));
    assert_eq!(m.parameters().iter().map(|p| p.to_vec()).collect::<Vec<Vec<f32>>>(), before);
    // plies-nn alone registers no GPU backend: the error names the first parameter.
    let e = m.to_device(Device::Gpu(0)).unwrap_err().to_string();
    assert!(e.contains("layers.0.weight") && e.contains("gpu:0"), "{e}");
    assert_eq!(m.device().unwrap(), Some(Device::Cpu));
    assert_eq!(Activation::Relu.device().unwrap(), None);
}

/// Every built-in layer visits every trainable tensor its forward pass uses.
#[test]
fn built_in_layers_visit_every_tensor_their_forward_uses() {
    use plies_autodiff::rng::Rng;
    use plies_autodiff::DType;
    let mut init = Init::new(0);
    let mut rng = Rng::new(1);
    let x = |dims: &[usize], rng: &mut Rng| Tensor::randn(dims, 0.0, 1.0, rng, DType::F32, Device::Cpu);
    let tiny = GptConfig { vocab_size: 11, context: 8, d_model: 8, n_layer: 2, n_head: 2, ..GptConfig::char_small() };
    let ids = Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6], [2, 3], Device::Cpu);
    let cases: Vec<(&str, Box<dyn Layer>, Tensor)> = vec![
        ("linear", Box::new(Linear::new(&mut init, 4, 3, true)), x(&[2, 4], &mut rng)),
        ("embedding", Box::new(Embedding::new(&mut init, 11, 4)), ids.clone()),
        ("conv2d", Box::new(Conv2d::new(&mut init, 2, 3, 3, 1, 1)), x(&[1, 2, 5, 5], &mut rng)),
        ("layer_norm", Box::new(LayerNorm::new(&mut init, 4)), x(&[2, 4], &mut rng)),
        ("rms_norm", Box::new(RmsNorm::new(&mut init, 4)), x(&[2, 4], &mut rng)),
        ("mlp", Box::new(Mlp::new(&mut init, &[4, 5, 3], Activation::Tanh)), x(&[2, 4], &mut rng)),
        ("rnn", Box::new(Rnn::new(&mut init, 4, 3)), x(&[2, 5, 4], &mut rng)),
        ("gru", Box::new(Gru::new(&mut init, 4, 3)), x(&[2, 5, 4], &mut rng)),
        ("attention", Box::new(CausalSelfAttention::new(&mut init, 8, 2, 0.0, 1.0)), x(&[2, 3, 8], &mut rng)),
        ("block", Box::new(Block::new(&mut init, &tiny)), x(&[2, 3, 8], &mut rng)),
        ("gpt", Box::new(Gpt::new(&mut init, tiny)), ids),
    ];
    for (name, layer, input) in cases {
        let out = layer.try_forward(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!out.graph_leaves().is_empty(), "{name}: the forward uses trainable tensors");
        plies_nn::check_visited(&*layer, &out).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// A hand-written `visit` that forgets a tensor is found from one forward pass.
#[test]
fn a_forgotten_parameter_is_named_by_check_visited() {
    use plies_nn::Scope;
    struct Forgetful {
        used: Linear,
        scale: Tensor,
    }
    impl Module for Forgetful {
        fn visit(&self, s: &mut Scope<'_>) {
            s.child("used", &self.used); // `scale` is not reported
        }
    }
    impl Layer for Forgetful {
        fn try_forward(&self, x: &Tensor) -> plies_autodiff::Result<Tensor> {
            self.used.try_forward(x)?.try_mul(&self.scale)
        }
    }
    let scale = Tensor::ones([3], plies_autodiff::DType::F32, Device::Cpu);
    scale.set_requires_grad(true);
    let m = Forgetful { used: Linear::new(&mut Init::new(0), 4, 3, true), scale };
    let out = m.try_forward(&Tensor::ones([2, 4], plies_autodiff::DType::F32, Device::Cpu)).unwrap();
    let e = plies_nn::check_visited(&m, &out).unwrap_err().to_string();
    assert!(e.contains("1 tensor(s)") && e.contains("f32 [3]") && e.contains("s.param"), "{e}");
    // The same check on the loss, after freezing what is visited, still finds it.
    m.used.weight.set_requires_grad(false);
    let loss =
        m.try_forward(&Tensor::ones([2, 4], plies_autodiff::DType::F32, Device::Cpu)).unwrap().try_sum_all().unwrap();
    assert!(plies_nn::check_visited(&m, &loss).is_err());
}

//! LoRA and DoRA behaviour: PEFT's target, rank and scaling rules, initialisation, frozen
//! base, several adapters, disabling, run-time scaling, merge/unmerge and DoRA's formulas.

use plies_autodiff::rng::Rng;
use plies_autodiff::{no_grad, Array, DType, Device, Distribution, Tensor};
use plies_nn::layers::*;
use plies_nn::{Init, Layer, Module};
use plies_peft::lora::{InitLora, Lora, LoraConfig, ModuleMatch};

fn tiny() -> GptConfig {
    GptConfig { vocab_size: 11, context: 8, d_model: 8, n_layer: 3, n_head: 2, ..GptConfig::char_small() }
}

fn ids() -> Tensor {
    Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6, 7, 0, 3, 3, 9, 10], [2, 6], Device::Cpu)
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_vec::<f64>()
}

fn randn(shape: &[usize], seed: u64, dtype: DType) -> Array {
    let key = Rng::new(seed).next_key();
    Array::random(shape, Distribution::Normal { mean: 0.0, std: 1.0 }, key, dtype, Device::Cpu).unwrap()
}

/// Max of |a - b| / max(|b|, floor) over the elements.
fn max_rel(a: &[f64], b: &[f64], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(floor)).fold(0.0, f64::max)
}

fn paths(l: &Lora) -> Vec<String> {
    l.layers().iter().map(|l| l.path.clone()).collect()
}

#[test]
fn targets_follow_peft_rules() {
    let g = Gpt::new(&mut Init::new(0), tiny());
    let mut init = Init::new(1);
    let l = Lora::new(&g, LoraConfig::new(4, 8.0, &["qkv", "fc2"]), &mut init).unwrap();
    assert_eq!(
        paths(&l),
        [
            "blocks.0.attn.qkv",
            "blocks.0.mlp.fc2",
            "blocks.1.attn.qkv",
            "blocks.1.mlp.fc2",
            "blocks.2.attn.qkv",
            "blocks.2.mlp.fc2"
        ]
    );
    // Suffixes match whole components only: "proj" is not "qkv_proj"'s suffix rule, and a
    // full path matches itself.
    let g = Gpt::new(&mut Init::new(0), tiny());
    let c = LoraConfig {
        target_modules: ModuleMatch::Regex(r"blocks\.\d\.(attn\.proj|mlp\.fc1)|head".into()),
        exclude_modules: Some(ModuleMatch::names(&["blocks.1.mlp.fc1"])),
        layers_to_transform: vec![1, 2],
        ..LoraConfig::new(4, 8.0, &[])
    };
    let l = Lora::new(&g, c, &mut init).unwrap();
    // head has no block index, so layers_to_transform leaves it out, as in PEFT.
    assert_eq!(paths(&l), ["blocks.1.attn.proj", "blocks.2.attn.proj", "blocks.2.mlp.fc1"]);
    // Layer indices are the base layer's: block i is layer i + 1.
    assert_eq!(l.layers().iter().map(|l| l.layer).collect::<Vec<_>>(), [2, 3, 3]);
    // A layers_pattern; the embedding has no block index, so it is left out.
    let g = Gpt::new(&mut Init::new(0), tiny());
    let c = LoraConfig {
        layers_pattern: vec!["blocks".into()],
        layers_to_transform: vec![0],
        ..LoraConfig::new(2, 2.0, &["tok_emb", "fc1"])
    };
    assert_eq!(paths(&Lora::new(&g, c, &mut init).unwrap()), ["blocks.0.mlp.fc1"]);
    let g = Gpt::new(&mut Init::new(0), tiny());
    assert_eq!(paths(&Lora::new(&g, LoraConfig::new(2, 2.0, &["tok_emb"]), &mut init).unwrap()), ["tok_emb"]);
}

#[test]
fn bad_targets_are_named() {
    let g = Gpt::new(&mut Init::new(0), tiny());
    let mut init = Init::new(1);
    let e = Lora::new(&g, LoraConfig::new(4, 8.0, &["nope"]), &mut init).err().unwrap().to_string();
    assert!(e.contains("\"nope\"") && e.contains("match no module"), "{e}");
    let e = Lora::new(&g, LoraConfig::new(4, 8.0, &["attn"]), &mut init).err().unwrap().to_string();
    assert!(e.contains("blocks.0.attn") && e.contains("not Linear or Embedding"), "{e}");
    let bad = LoraConfig { target_modules: ModuleMatch::Regex("(qkv".into()), ..LoraConfig::default() };
    let e = Lora::new(&g, bad, &mut init).err().unwrap().to_string();
    assert!(e.contains("regex `(qkv` at character 4"), "{e}");
    let dora_emb = LoraConfig { use_dora: true, ..LoraConfig::new(2, 2.0, &["tok_emb"]) };
    let e = Lora::new(&g, dora_emb, &mut init).err().unwrap().to_string();
    assert!(e.contains("`tok_emb`: DoRA on an Embedding"), "{e}");
}

#[test]
fn rank_alpha_patterns_and_rslora_set_shapes_and_scaling() {
    let g = Gpt::new(&mut Init::new(0), tiny());
    let c = LoraConfig {
        rank_pattern: vec![(r"blocks\.1\.attn\.qkv".into(), 2), ("fc1".into(), 6)],
        alpha_pattern: vec![("fc1".into(), 3.0)],
        use_rslora: true,
        ..LoraConfig::new(4, 8.0, &["qkv", "fc1"])
    };
    let l = Lora::new(&g, c, &mut Init::new(1)).unwrap();
    let unit = |p: &str| l.layer(p).unwrap().active().unwrap();
    let q0 = unit("blocks.0.attn.qkv");
    assert_eq!((q0.r, q0.a.dims(), q0.b.dims()), (4, vec![4, 8], vec![24, 4]));
    assert_eq!(q0.scaling(), 8.0 / 2.0, "rsLoRA: alpha / sqrt(r)");
    let q1 = unit("blocks.1.attn.qkv");
    assert_eq!((q1.r, q1.scaling()), (2, 8.0 / 2f64.sqrt()));
    let f = unit("blocks.2.mlp.fc1");
    assert_eq!((f.r, f.alpha, f.a.dims(), f.scaling()), (6, 3.0, vec![6, 8], 3.0 / 6f64.sqrt()));
    // Without rsLoRA: alpha / r.
    let g = Gpt::new(&mut Init::new(0), tiny());
    let l = Lora::new(&g, LoraConfig::new(4, 8.0, &["qkv"]), &mut Init::new(1)).unwrap();
    assert_eq!(l.layers()[0].scaling(), Some(2.0));
}

#[test]
fn peft_initialisation_and_a_frozen_base() {
    let g = Gpt::new(&mut Init::new(0), tiny());
    let before = no_grad(|| f64s(&g.forward(&ids())));
    let l = Lora::new(&g, LoraConfig::new(4, 8.0, &["qkv", "fc1", "tok_emb"]), &mut Init::new(1)).unwrap();
    let qkv = l.layer("blocks.0.attn.qkv").unwrap().active().unwrap();
    // A is U(-1/sqrt(in), 1/sqrt(in)) (kaiming-uniform, a = sqrt 5), B zero.
    let a: Vec<f32> = qkv.a.to_vec();
    assert!(a.iter().all(|v| v.abs() <= 1.0 / 8f32.sqrt()) && a.iter().any(|v| v.abs() > 0.2));
    assert!(qkv.b.to_vec::<f32>().iter().all(|&v| v == 0.0));
    // Embeddings: A zero, B N(0, 1).
    let emb = l.layer("tok_emb").unwrap().active().unwrap();
    assert!(emb.a.to_vec::<f32>().iter().all(|&v| v == 0.0));
    assert!(emb.b.to_vec::<f32>().iter().any(|v| v.abs() > 0.5));
    // Within rounding: the adapted qkv scales q after the product, the split path before.
    let start = no_grad(|| f64s(&g.forward(&ids())));
    assert!(max_rel(&start, &before, 1e-3) < 1e-5, "starts as the base model");
    // Gaussian: A N(0, 1/r).
    let g2 = Gpt::new(&mut Init::new(0), tiny());
    let c = LoraConfig { init_lora_weights: InitLora::Gaussian, ..LoraConfig::new(4, 8.0, &["fc1"]) };
    let l2 = Lora::new(&g2, c, &mut Init::new(1)).unwrap();
    let a: Vec<f32> = l2.layers()[0].active().unwrap().a.to_vec();
    let var = a.iter().map(|v| (v * v) as f64).sum::<f64>() / a.len() as f64;
    assert!((var.sqrt() - 0.25).abs() < 0.08, "std {}", var.sqrt());

    let trainable: Vec<String> = g.trainable_parameters().into_iter().map(|p| p.name).collect();
    assert_eq!(trainable.len(), 2 + 3 * 2 * 2);
    assert!(trainable.iter().all(|n| n.contains(".lora_")), "{trainable:?}");
    assert_eq!(trainable[0], "tok_emb.lora_embedding_A");
    assert_eq!(trainable[2], "blocks.0.attn.qkv.lora_A.weight");
    g.forward(&ids()).sum_all().backward().unwrap();
    for p in g.named_parameters() {
        assert_eq!(p.tensor.grad().is_some(), p.name.contains(".lora_"), "{}", p.name);
    }
}

#[test]
fn a_frozen_base_below_the_adapters_records_no_graph() {
    let g = Gpt::new(&mut Init::new(0), tiny());
    let _l = Lora::new(
        &g,
        LoraConfig { layers_to_transform: vec![2], ..LoraConfig::new(4, 8.0, &["fc1"]) },
        &mut Init::new(1),
    )
    .unwrap();
    let h = g.try_embed(&ids()).unwrap();
    assert!(!h.has_graph());
    let h = g.blocks[0].forward(&h);
    let h = g.blocks[1].forward(&h);
    assert!(!h.has_graph(), "no node below the lowest adapter");
    let fc1 = &g.blocks[2].mlp.fc1;
    let rows = h.try_reshape([12, 8]).unwrap();
    assert!(!fc1.try_base(&rows, true).unwrap().has_graph(), "the frozen base product has no node");
    assert!(g.blocks[2].forward(&h).has_graph());
}

#[test]
fn merge_and_unmerge() {
    for dora in [false, true] {
        let g = Gpt::new(&mut Init::new(0), tiny());
        let c = LoraConfig {
            init_lora_weights: InitLora::Random,
            use_dora: dora,
            ..LoraConfig::new(4, 16.0, &["qkv", "proj", "fc1", "fc2", "tok_emb"])
        };
        let c = if dora {
            LoraConfig { target_modules: ModuleMatch::names(&["qkv", "proj", "fc1", "fc2"]), ..c }
        } else {
            c
        };
        let l = Lora::new(&g, c, &mut Init::new(1)).unwrap();
        let base: Vec<Vec<f32>> = g.parameters().iter().map(|t| t.to_vec()).collect();
        let base_out = no_grad(|| l.disabled().map(|_guard| f64s(&g.forward(&ids())))).unwrap();
        let out = no_grad(|| f64s(&g.forward(&ids())));
        assert!(max_rel(&out, &base_out, 1.0) > 1e-2, "the random adapter changes the output");
        l.merge().unwrap();
        assert!(l.layers().iter().all(|x| x.merged_name().as_deref() == Some("default")));
        let merged = no_grad(|| f64s(&g.forward(&ids())));
        let rel = max_rel(&merged, &out, 1.0);
        assert!(rel <= 1e-5, "dora {dora}: merged outputs differ by {rel:e} relative");
        assert!(l.merge().is_err(), "merging twice is refused");
        assert!(l.disabled().is_err(), "disabling a merged model is refused");
        l.unmerge().unwrap();
        for (p, b) in g.parameters().iter().zip(&base) {
            let now: Vec<f32> = p.to_vec();
            let worst = now.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 2e-6, "dora {dora}: unmerge leaves {worst:e}");
        }
        let again = no_grad(|| f64s(&g.forward(&ids())));
        assert!(max_rel(&again, &out, 1.0) <= 1e-5);
    }
}

#[test]
fn named_adapters_disable_scale_and_delete() {
    let g = Gpt::new(&mut Init::new(0), tiny());
    let random = |r| LoraConfig { init_lora_weights: InitLora::Random, ..LoraConfig::new(r, 4.0, &["fc1", "fc2"]) };
    let mut l = Lora::new(&g, random(2), &mut Init::new(1)).unwrap();
    let base = no_grad(|| l.disabled().map(|_g| f64s(&g.forward(&ids())))).unwrap();
    let first = no_grad(|| f64s(&g.forward(&ids())));
    l.add_adapter(&g, "second", random(3), &mut Init::new(2)).unwrap();
    assert_eq!(l.active_adapter(), Some("default"));
    assert_eq!(no_grad(|| f64s(&g.forward(&ids()))), first, "a new adapter starts inactive");
    assert_eq!(g.num_trainable_params(), 3 * 2 * (2 * 8 + 32 * 2));
    l.set_adapter("second").unwrap();
    let second = no_grad(|| f64s(&g.forward(&ids())));
    assert_ne!(second, first);
    // Only the active adapter is visited and trains (rank 3 now).
    assert_eq!(g.num_trainable_params(), 3 * 2 * (3 * 8 + 32 * 3));
    assert_eq!(l.layers()[0].active().unwrap().r, 3);
    {
        let _off = l.disabled().unwrap();
        assert_eq!(no_grad(|| f64s(&g.forward(&ids()))), base);
    }
    assert_eq!(no_grad(|| f64s(&g.forward(&ids()))), second, "the scope restores");
    // Scaling one layer by 0 is the same as having no adapter there; the guard restores it.
    let target = "blocks.1.mlp.fc2";
    let s = l.layer(target).unwrap().scaling().unwrap();
    {
        let _probe = l.scaled(0.0, |p, _| p == target).unwrap();
        assert_eq!(l.layer(target).unwrap().scaling(), Some(0.0));
        let probed = no_grad(|| f64s(&g.forward(&ids())));
        let layer = l.layer(target).unwrap();
        layer.set_active(None);
        let without = no_grad(|| f64s(&g.forward(&ids())));
        layer.set_active(Some("second"));
        assert!(max_rel(&probed, &without, 1.0) < 1e-6);
        assert_ne!(probed, second);
    }
    assert_eq!(l.layer(target).unwrap().scaling(), Some(s));
    assert_eq!(no_grad(|| f64s(&g.forward(&ids()))), second);
    // A probe scaled by 0.25 (IST) changes the output and is undone even if the code fails.
    let r: Result<(), String> = (|| {
        let _probe = l.scaled(0.25, |_, layer| layer == 2).map_err(|e| e.to_string())?;
        assert_ne!(no_grad(|| f64s(&g.forward(&ids()))), second);
        Err("probe failed".into())
    })();
    assert!(r.is_err());
    assert_eq!(no_grad(|| f64s(&g.forward(&ids()))), second);
    l.set_adapter("nope").unwrap_err();
    l.delete_adapter("second").unwrap();
    assert_eq!(l.active_adapter(), Some("default"));
    assert_eq!(no_grad(|| f64s(&g.forward(&ids()))), first);
    assert_eq!(l.adapter_names(), ["default"]);
    l.delete_adapter("default").unwrap();
    assert_eq!(no_grad(|| f64s(&g.forward(&ids()))), base);
    assert_eq!(g.num_trainable_params(), 0);
}

/// DoRA on a 2x3 Linear against the formulas computed by hand.
#[test]
fn dora_matches_a_hand_computed_case() {
    let w = [[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]];
    let bias = [0.5, -0.5];
    let lin = Linear::from_tensors(
        Tensor::param(Array::from_vec(w.concat(), [2, 3], Device::Cpu).unwrap()),
        Some(Tensor::param(Array::from_vec(bias.to_vec(), [2], Device::Cpu).unwrap())),
    );
    let c = LoraConfig { use_dora: true, ..LoraConfig::new(1, 2.0, &["lin"]) };
    struct Holder(Linear);
    impl Module for Holder {
        fn visit(&self, s: &mut plies_nn::Scope<'_>) {
            s.child("lin", &self.0);
        }
    }
    let h = Holder(lin);
    let l = Lora::new(&h, c, &mut Init::new(0).with_dtype(DType::F64)).unwrap();
    let u = l.layers()[0].active().unwrap();
    let (a, b) = ([1.0, 0.0, 1.0], [0.5, 2.0]);
    u.a.set_value(Array::from_vec(a.to_vec(), [1, 3], Device::Cpu).unwrap()).unwrap();
    u.b.set_value(Array::from_vec(b.to_vec(), [2, 1], Device::Cpu).unwrap()).unwrap();
    let m = [2.0, 3.0];
    let mag = u.magnitude.as_ref().unwrap();
    // At creation m was ||W0 + s B A|| with B = 0: the base row norms sqrt(5), sqrt(10).
    let m0 = f64s(mag);
    assert!((m0[0] - 5f64.sqrt()).abs() < 1e-12 && (m0[1] - 10f64.sqrt()).abs() < 1e-12, "{m0:?}");
    mag.set_value(Array::from_vec(m.to_vec(), [2], Device::Cpu).unwrap()).unwrap();
    let s = 2.0; // alpha / r
    let x = [1.0, -1.0, 2.0];
    let mut want = Vec::new();
    for i in 0..2 {
        let row: Vec<f64> = (0..3).map(|j| w[i][j] + s * b[i] * a[j]).collect();
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        let w0x: f64 = (0..3).map(|j| w[i][j] * x[j]).sum();
        let bax: f64 = b[i] * (0..3).map(|j| a[j] * x[j]).sum::<f64>();
        want.push(w0x + bias[i] + (m[i] / norm - 1.0) * w0x + (m[i] / norm) * s * bax);
    }
    let xt = Tensor::from_vec(x.to_vec(), [1, 3], Device::Cpu);
    let y = h.0.forward(&xt);
    let got = f64s(&y);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
    }
    // The norm is detached: A and B get LoRA's gradients with each output column's gradient
    // times m / ||W0 + s B A||. With loss = sum(y): dB_i = c_i s (A x), dA_j = sum_i c_i s B_i x_j.
    y.sum_all().backward().unwrap();
    let c: Vec<f64> =
        (0..2).map(|i| m[i] / (0..3).map(|j| (w[i][j] + s * b[i] * a[j]).powi(2)).sum::<f64>().sqrt()).collect();
    let ax: f64 = (0..3).map(|j| a[j] * x[j]).sum();
    let db: Vec<f64> = (0..2).map(|i| c[i] * s * ax).collect();
    let da: Vec<f64> = (0..3).map(|j| (0..2).map(|i| c[i] * s * b[i]).sum::<f64>() * x[j]).collect();
    let close = |g: Vec<f64>, w: &[f64]| g.iter().zip(w).all(|(g, w)| (g - w).abs() < 1e-12);
    assert!(close(u.b.grad().unwrap().to_vec().unwrap(), &db));
    assert!(close(u.a.grad().unwrap().to_vec().unwrap(), &da));
    // dm_i = (W0 x + s B A x)_i / norm_i.
    let dm: Vec<f64> = (0..2)
        .map(|i| {
            let w0x: f64 = (0..3).map(|j| w[i][j] * x[j]).sum();
            (w0x + s * b[i] * ax) * c[i] / m[i]
        })
        .collect();
    assert!(close(mag.grad().unwrap().to_vec().unwrap(), &dm));
    assert!(h.0.weight.grad().is_none() && h.0.bias.as_ref().unwrap().grad().is_none());
    // Merge: W' = m / ||W0 + s B A|| (W0 + s B A); unmerge restores W0.
    l.merge().unwrap();
    let merged = f64s(&h.0.weight);
    for i in 0..2 {
        for j in 0..3 {
            assert!((merged[i * 3 + j] - c[i] * (w[i][j] + s * b[i] * a[j])).abs() < 1e-12);
        }
    }
    l.unmerge().unwrap();
    let back = f64s(&h.0.weight);
    assert!(back.iter().zip(w.concat()).all(|(g, w)| (g - w).abs() < 1e-12), "{back:?}");
}

#[test]
fn dropout_applies_to_the_adapter_input_only_in_training() {
    let g = Gpt::new(&mut Init::new(0), tiny());
    let c = LoraConfig { lora_dropout: 0.5, init_lora_weights: InitLora::Random, ..LoraConfig::new(2, 2.0, &["fc1"]) };
    let _l = Lora::new(&g, c, &mut Init::new(1)).unwrap();
    let a = no_grad(|| f64s(&g.forward(&ids())));
    let b = no_grad(|| f64s(&g.forward(&ids())));
    assert_ne!(a, b, "training: fresh dropout masks");
    g.eval();
    let a = no_grad(|| f64s(&g.forward(&ids())));
    assert_eq!(a, no_grad(|| f64s(&g.forward(&ids()))));
}

#[test]
fn lora_on_attention_matches_lora_on_a_plain_linear() {
    // The split qkv path and the adapter path compute the same attention.
    let mut init = Init::new(3).with_dtype(DType::F64);
    let att = CausalSelfAttention::new(&mut init, 6, 2, 0.0, 1.0);
    let x = Tensor::new(randn(&[2, 4, 6], 5, DType::F64));
    let before = f64s(&att.forward(&x));
    struct Holder(CausalSelfAttention);
    impl Module for Holder {
        fn visit(&self, s: &mut plies_nn::Scope<'_>) {
            s.child("attn", &self.0);
        }
    }
    let h = Holder(att);
    let l = Lora::new(&h, LoraConfig::new(2, 4.0, &["qkv"]), &mut init).unwrap();
    let same = f64s(&h.0.forward(&x));
    assert!(max_rel(&same, &before, 1.0) < 1e-12, "B = 0 changes nothing");
    let u = l.layers()[0].active().unwrap();
    u.b.set_value(randn(&[18, 2], 6, DType::F64)).unwrap();
    let adapted = f64s(&h.0.forward(&x));
    // The same model with the delta merged into qkv's weight, computed on the split path.
    l.merge().unwrap();
    let merged = f64s(&h.0.forward(&x));
    assert!(max_rel(&adapted, &merged, 1.0) < 1e-12);
    assert!(max_rel(&adapted, &before, 1.0) > 1e-3);
}

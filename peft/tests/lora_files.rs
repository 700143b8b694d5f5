//! Adapter files in HF PEFT's layout: the keys, metadata and config PEFT reads, a round
//! trip, and loading errors that name the file and each bad key.

#[path = "../../nn/tests/scratch/mod.rs"]
mod scratch;

use plies_autodiff::{no_grad, Device, Tensor};
use plies_nn::checkpoint::{load_tensors, save_tensors};
use plies_nn::layers::*;
use plies_nn::{Init, Layer, Module};
use plies_peft::lora::{InitLora, Lora, LoraConfig, ModuleMatch};
use scratch::Scratch;
use std::collections::HashMap;

fn tiny() -> GptConfig {
    GptConfig { vocab_size: 11, context: 8, d_model: 8, n_layer: 2, n_head: 2, ..GptConfig::char_small() }
}

fn ids() -> Tensor {
    Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6, 7, 0, 3, 3, 9, 10], [2, 6], Device::Cpu)
}

fn out(g: &Gpt) -> Vec<f32> {
    no_grad(|| g.forward(&ids()).to_vec())
}

fn config(dora: bool) -> LoraConfig {
    LoraConfig {
        init_lora_weights: InitLora::Random,
        use_dora: dora,
        rank_pattern: vec![("fc2".into(), 2)],
        alpha_pattern: vec![("fc2".into(), 3.0)],
        base_model_name_or_path: Some("char_gpt".into()),
        ..LoraConfig::new(4, 16.0, if dora { &["qkv", "fc2"] } else { &["qkv", "fc2", "tok_emb"] })
    }
}

#[test]
fn files_have_peft_keys_metadata_and_config() {
    let dir = Scratch::new("lora-layout");
    let g = Gpt::new(&mut Init::new(0), tiny());
    let l = Lora::new(&g, config(true), &mut Init::new(1)).unwrap();
    l.save_pretrained(&*dir).unwrap();
    let f = load_tensors(dir.join("adapter_model.safetensors"), Device::Cpu).unwrap();
    assert_eq!(f.metadata, HashMap::from([("format".to_string(), "pt".to_string())]));
    let mut keys: Vec<(String, Vec<usize>)> = f.tensors.iter().map(|(k, a)| (k.clone(), a.dims().to_vec())).collect();
    keys.sort();
    let p = "base_model.model.blocks.0";
    assert_eq!(keys.len(), 2 * 2 * 3);
    assert!(keys.contains(&(format!("{p}.attn.qkv.lora_A.weight"), vec![4, 8])));
    assert!(keys.contains(&(format!("{p}.attn.qkv.lora_B.weight"), vec![24, 4])));
    assert!(keys.contains(&(format!("{p}.attn.qkv.lora_magnitude_vector"), vec![24])));
    assert!(keys.contains(&(format!("{p}.mlp.fc2.lora_A.weight"), vec![2, 32])), "rank_pattern: r 2");
    let text = std::fs::read_to_string(dir.join("adapter_config.json")).unwrap();
    // json.dumps(indent=2, sort_keys=True): two-space indent, keys in order.
    assert!(
        text.starts_with(
            "{\n  \"alpha_pattern\": {\n    \"fc2\": 3\n  },\n  \"base_model_name_or_path\": \"char_gpt\","
        ),
        "{text}"
    );
    let keys: Vec<&str> =
        text.lines().filter(|l| l.starts_with("  \"")).map(|l| l.split('"').nth(1).unwrap()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    for k in ["peft_type", "r", "lora_alpha", "target_modules", "lora_dropout", "bias", "use_rslora", "use_dora"] {
        assert!(keys.contains(&k), "{k} in {keys:?}");
    }
    for k in ["rank_pattern", "fan_in_fan_out", "base_model_name_or_path", "task_type"] {
        assert!(keys.contains(&k), "{k}");
    }
    assert!(text.contains("\"peft_type\": \"LORA\"") && text.contains("\"bias\": \"none\""));
    assert!(text.contains("\"target_modules\": [\n    \"fc2\",\n    \"qkv\"\n  ]"), "{text}");
    // A second adapter goes to a subfolder named after it.
    let mut l = l;
    l.add_adapter(&g, "other", LoraConfig::new(2, 2.0, &["fc1"]), &mut Init::new(2)).unwrap();
    l.save_pretrained(&*dir).unwrap();
    let f = load_tensors(dir.join("other/adapter_model.safetensors"), Device::Cpu).unwrap();
    assert_eq!(f.tensors.len(), 4);
}

#[test]
fn adapters_round_trip() {
    for dora in [false, true] {
        let dir = Scratch::new(&format!("lora-round-trip-{dora}"));
        let g = Gpt::new(&mut Init::new(0), tiny());
        let l = Lora::new(&g, config(dora), &mut Init::new(1)).unwrap();
        let want = out(&g);
        l.save_pretrained(&*dir).unwrap();
        // A fresh base model from the same seed, the adapter loaded from the files.
        let g2 = Gpt::new(&mut Init::new(0), tiny());
        let base = out(&g2);
        let (l2, report) = Lora::from_pretrained(&g2, &*dir, &mut Init::new(99)).unwrap();
        assert!(report.ignored_config_fields.is_empty(), "{:?}", report.ignored_config_fields);
        // Target names are saved sorted, as PEFT saves its set.
        let mut want_cfg = l.config("default").unwrap().clone();
        want_cfg.target_modules = ModuleMatch::names(if dora { &["fc2", "qkv"] } else { &["fc2", "qkv", "tok_emb"] });
        assert_eq!(l2.config("default"), Some(&want_cfg));
        assert_eq!(out(&g2), want, "dora {dora}");
        assert_ne!(out(&g2), base);
        assert_eq!(g2.num_trainable_params(), g.num_trainable_params());
        // load_adapter adds it under another name, inactive until set.
        let mut l3 = Lora::new(&g2, LoraConfig::new(1, 1.0, &["fc1"]), &mut Init::new(3)).unwrap();
        l3.load_adapter(&g2, &*dir, "loaded", &mut Init::new(4)).unwrap_err(); // qkv taken by l2
        drop(l3);
        let g3 = Gpt::new(&mut Init::new(0), tiny());
        let mut l3 = Lora::new(&g3, LoraConfig::new(1, 1.0, &["fc1"]), &mut Init::new(3)).unwrap();
        let only_fc1 = out(&g3);
        l3.load_adapter(&g3, &*dir, "loaded", &mut Init::new(4)).unwrap();
        assert_eq!(out(&g3), only_fc1);
        l3.set_adapter("loaded").unwrap();
        assert_eq!(out(&g3), want);
    }
}

#[test]
fn config_from_peft_with_defaults_and_unknown_fields() {
    let text = r#"{"peft_type": "LORA", "r": 2, "target_modules": ["fc1"], "lora_alpha": 4,
        "megatron_config": null, "use_dora": false, "layer_replication": null}"#;
    let (c, unknown) = LoraConfig::from_json(text, "x/adapter_config.json").unwrap();
    assert_eq!((c.r, c.lora_alpha, c.lora_dropout), (2, 4.0, 0.0));
    assert_eq!(unknown, ["layer_replication", "megatron_config"]);
    let only_type = LoraConfig::from_json(r#"{"peft_type": "LORA", "target_modules": "fc.*"}"#, "f").unwrap().0;
    assert_eq!(only_type.r, 8);
    for (text, want) in [
        (r#"{"r": 2}"#, "f.json: at key `peft_type`: missing"),
        (r#"{"peft_type": "IA3"}"#, "`IA3` is not LORA"),
        (r#"{"peft_type": "LORA", "r": "x", "target_modules": ["a"]}"#, "key `r`: expected a non-negative integer"),
        (r#"{"peft_type": "LORA", "bias": "all", "target_modules": ["a"]}"#, "key `bias`: only \"none\""),
        (r#"{"peft_type": "LORA", "fan_in_fan_out": true, "target_modules": ["a"]}"#, "key `fan_in_fan_out`"),
        (r#"{"peft_type": "LORA", "r": 0, "target_modules": ["a"]}"#, "f.json: at key `r`: must be positive"),
        ("{\"peft_type\": \n \"LORA\",,}", "f.json: at line 2 column 9"),
    ] {
        let e = LoraConfig::from_json(text, "f.json").unwrap_err().to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
}

#[test]
fn malformed_adapter_files_are_named() {
    let dir = Scratch::new("lora-malformed");
    let g = Gpt::new(&mut Init::new(0), tiny());
    let l = Lora::new(&g, config(false), &mut Init::new(1)).unwrap();
    l.save_pretrained(&*dir).unwrap();
    let weights = dir.join("adapter_model.safetensors");
    let good = load_tensors(&weights, Device::Cpu).unwrap();
    let mut named: Vec<(String, plies_autodiff::Array)> = good.tensors.clone().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let load = || {
        let fresh = Gpt::new(&mut Init::new(0), tiny());
        let r = Lora::from_pretrained(&fresh, &*dir, &mut Init::new(2));
        let untouched = fresh.trainable_parameters().len() == fresh.named_parameters().len()
            && fresh.named_parameters().iter().all(|p| !p.name.contains("lora"));
        (r.map(|_| ()).map_err(|e| e.to_string()), untouched)
    };
    let qa = "base_model.model.blocks.1.attn.qkv.lora_A.weight";
    // Missing, unexpected and mismatched keys, all named in one error.
    let mut bad = named.clone();
    bad.retain(|(k, _)| k != qa);
    bad.push(("base_model.model.blocks.0.mlp.fc1.lora_A.weight".into(), good.tensors[qa].clone()));
    let fb = "base_model.model.blocks.0.mlp.fc2.lora_B.weight";
    let i = bad.iter().position(|(k, _)| k == fb).unwrap();
    bad[i].1 = plies_autodiff::Array::zeros([8, 3], plies_autodiff::DType::F32, Device::Cpu).unwrap();
    save_tensors(&weights, &bad, &meta).unwrap();
    let (e, untouched) = load();
    let e = e.unwrap_err();
    assert!(e.contains("adapter_model.safetensors"), "{e}");
    assert!(e.contains(&format!("missing `{qa}` [4, 8]")), "{e}");
    assert!(e.contains("unexpected `base_model.model.blocks.0.mlp.fc1.lora_A.weight`"), "{e}");
    assert!(e.contains(&format!("`{fb}` is [8, 3] in the file but [8, 2] in the model")), "{e}");
    assert!(untouched, "a failed load leaves the model as it was");
    // A truncated file names the file and the offset.
    save_tensors(&weights, &named, &meta).unwrap();
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() - 10]).unwrap();
    let e = load().0.unwrap_err();
    assert!(e.contains("adapter_model.safetensors") && e.contains("byte"), "{e}");
    // A missing file and a broken config name theirs.
    std::fs::remove_file(&weights).unwrap();
    let e = load().0.unwrap_err();
    assert!(e.contains("adapter_model.safetensors"), "{e}");
    std::fs::write(dir.join("adapter_config.json"), "{\"peft_type\": \"LORA\", \"r\": -1}").unwrap();
    let e = load().0.unwrap_err();
    assert!(e.contains("adapter_config.json: at key `r`"), "{e}");
}

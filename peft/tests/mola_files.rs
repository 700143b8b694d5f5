//! MoLA adapter files: the keys and config written, a round trip that restores the outputs,
//! and loading errors that name the file and the bad key.

#[path = "../../nn/tests/scratch/mod.rs"]
mod scratch;

use plies_autodiff::{no_grad, Device, Tensor};
use plies_nn::checkpoint::{load_tensors, save_tensors};
use plies_nn::layers::*;
use plies_nn::{Init, Layer};
use plies_peft::lora::{InitLora, LoraConfig};
use plies_peft::mola::{Mola, MolaConfig};
use scratch::Scratch;
use std::collections::HashMap;

fn tiny() -> GptConfig {
    GptConfig { vocab_size: 11, context: 8, d_model: 8, n_layer: 2, n_head: 2, dropout: 0.0, ..GptConfig::char_small() }
}

fn ids() -> Tensor {
    Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6, 7, 0, 3, 3, 9, 10], [2, 6], Device::Cpu)
}

fn out(g: &Gpt) -> Vec<f32> {
    no_grad(|| g.forward(&ids()).to_vec())
}

fn config() -> MolaConfig {
    let lora = LoraConfig {
        init_lora_weights: InitLora::Random,
        rank_pattern: vec![("fc2".into(), 2)],
        ..LoraConfig::new(4, 16.0, &["fc2", "qkv"])
    };
    MolaConfig::new(lora, "2,3").unwrap()
}

fn saved(name: &str) -> (Scratch, Vec<f32>) {
    let dir = Scratch::new(name);
    let model = Gpt::new(&mut Init::new(1), tiny());
    let mola = Mola::new(&model, config(), &mut Init::new(2)).unwrap();
    mola.save_pretrained(&*dir).unwrap();
    (dir, out(&model))
}

#[test]
fn round_trip_restores_outputs_and_config() {
    let (dir, want) = saved("mola-round-trip");
    let file = load_tensors(dir.join("adapter_model.safetensors"), Device::Cpu).unwrap();
    let mut keys: Vec<&String> = file.tensors.keys().collect();
    keys.sort();
    assert_eq!(keys.len(), 2 * (1 + 2 * 2) + 2 * (1 + 2 * 3));
    let k = |s: &str| format!("base_model.model.blocks.1.{s}");
    assert_eq!(file.tensors[&k("attn.qkv.lora_router.weight")].dims(), [3, 8]);
    assert_eq!(file.tensors[&k("attn.qkv.lora_A.2.weight")].dims(), [4, 8]);
    assert_eq!(file.tensors[&k("mlp.fc2.lora_B.2.weight")].dims(), [8, 2]);
    let text = std::fs::read_to_string(dir.join("adapter_config.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["peft_type"], "MOLA");
    assert_eq!(v["experts"], serde_json::json!([2, 3]));
    assert_eq!(v["experts_per_layer"], serde_json::json!([2, 3]));
    assert_eq!(v["top_k"], 2);

    // A fresh base from the same seed, experts from other draws, then loaded.
    let model = Gpt::new(&mut Init::new(1), tiny());
    let (mola, report) = Mola::from_pretrained(&model, &*dir, &mut Init::new(99)).unwrap();
    assert!(report.ignored_config_fields.is_empty(), "{:?}", report.ignored_config_fields);
    assert_eq!(mola.config(), &config());
    assert_eq!(out(&model), want);
    assert!(!model.tok_emb.weight.requires_grad());
}

fn load_err(dir: &Scratch) -> String {
    let model = Gpt::new(&mut Init::new(1), tiny());
    let e = Mola::from_pretrained(&model, &**dir, &mut Init::new(3)).err().expect("loading must fail").to_string();
    // A failed load attaches nothing and freezes nothing.
    assert!(model.blocks[0].attn.qkv.adapter().is_none());
    assert!(model.tok_emb.weight.requires_grad());
    e
}

#[test]
fn weights_that_do_not_fit_are_named() {
    let (dir, _) = saved("mola-bad-weights");
    let path = dir.join("adapter_model.safetensors");
    let mut t = load_tensors(&path, Device::Cpu).unwrap().tensors;
    let router = "base_model.model.blocks.0.attn.qkv.lora_router.weight".to_string();
    let a1 = "base_model.model.blocks.0.mlp.fc2.lora_A.1.weight".to_string();
    t.remove(&router);
    let bad = t[&a1].narrow(0, 0, 1).unwrap().contiguous().unwrap();
    t.insert(a1.clone(), bad);
    t.insert("base_model.model.blocks.0.mlp.fc2.lora_A.7.weight".into(), t[&a1].clone());
    let mut list: Vec<(String, _)> = t.into_iter().collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    save_tensors(&path, &list, &HashMap::new()).unwrap();
    let e = load_err(&dir);
    assert!(e.contains("adapter_model.safetensors"), "{e}");
    assert!(e.contains(&format!("missing `{router}` [2, 8]")), "{e}");
    assert!(e.contains(&format!("`{a1}` is [1, 32] in the file but [2, 32]")), "{e}");
    assert!(e.contains("unexpected `base_model.model.blocks.0.mlp.fc2.lora_A.7.weight`"), "{e}");
}

#[test]
fn malformed_configs_are_named() {
    let (dir, _) = saved("mola-bad-config");
    let path = dir.join("adapter_config.json");
    let good = std::fs::read_to_string(&path).unwrap();
    let cases = [
        (good.replace("\"MOLA\"", "\"LORA\""), "key `peft_type`"),
        (
            good.replacen("\"experts_per_layer\": [\n    2,\n    3\n  ]", "\"experts_per_layer\": [3, 3]", 1),
            "records [3, 3]",
        ),
        (good.replacen("\"top_k\": 2", "\"top_k\": 5", 1), "top_k 5"),
        (good.replacen("\"top_k\": 2", "\"top_k\": \"two\"", 1), "key `top_k`"),
        (good[..good.len() / 2].to_string(), "line"),
    ];
    for (text, needle) in cases {
        assert_ne!(text, good, "the case must change the file");
        std::fs::write(&path, &text).unwrap();
        let e = load_err(&dir);
        assert!(e.contains("adapter_config.json") && e.contains(needle), "{needle}: {e}");
    }
    std::fs::write(&path, &good).unwrap();
    let w = dir.join("adapter_model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(&dir);
    assert!(e.contains("adapter_model.safetensors"), "{e}");
}

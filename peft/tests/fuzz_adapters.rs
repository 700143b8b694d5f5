//! Adapter files survive garbage: `adapter_model.safetensors` and `adapter_config.json` each get
//! 10,000 mutated or random inputs through plies-nn's loader fuzz harness (included by path),
//! the other file of the folder kept valid. No case may panic, hang or allocate past its bound;
//! a refused folder's error names the file and a key or offset; a folder that loads gives back
//! exactly the tensors its weights file holds.

#[allow(dead_code)]
#[path = "../../nn/tests/fuzz_loaders/checkpoints.rs"]
mod checkpoints;
#[allow(dead_code)]
#[path = "../../nn/tests/fuzz_loaders/harness.rs"]
mod harness;

pub use harness::*;

use checkpoints::{base_bound, length_field, semantic as safetensors_semantic, verify_arrays};
use mutate::Field;
use plies_autodiff::Array;
use plies_nn::layers::{Gpt, GptConfig};
use plies_nn::{Init, Module};
use plies_peft::lora::{InitLora, Lora, LoraConfig};
use serde_json::{json, Value};
use std::any::Any;
use std::path::Path;

const WEIGHTS: &str = "adapter_model.safetensors";
const CONFIG: &str = "adapter_config.json";

fn tiny() -> GptConfig {
    GptConfig { vocab_size: 7, context: 4, d_model: 4, n_layer: 2, n_head: 2, mlp_ratio: 2, ..GptConfig::char_small() }
}

/// LoRA on the attention and an embedding, DoRA-free; rank and alpha patterns on fc2.
fn lora_config() -> LoraConfig {
    LoraConfig {
        init_lora_weights: InitLora::Random,
        rank_pattern: vec![("fc2".into(), 1)],
        alpha_pattern: vec![("fc2".into(), 3.0)],
        ..LoraConfig::new(2, 4.0, &["qkv", "fc2", "tok_emb"])
    }
}

fn dora_config() -> LoraConfig {
    LoraConfig { use_dora: true, ..LoraConfig::new(2, 4.0, &["qkv", "fc1"]) }
}

/// The folder an adapter with `config` is saved to: (weights bytes, config text).
fn saved(config: LoraConfig, seed: u64) -> (Vec<u8>, String) {
    let g = Gpt::new(&mut Init::new(0), tiny());
    let l = Lora::new(&g, config, &mut Init::new(seed)).unwrap();
    let dir = scratch(&format!("adapter-seed-{seed}"));
    l.save_pretrained(&dir).unwrap();
    let out = (std::fs::read(dir.join(WEIGHTS)).unwrap(), std::fs::read_to_string(dir.join(CONFIG)).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Bytes of the base model's parameters (f32).
fn model_bytes() -> usize {
    4 * Gpt::new(&mut Init::new(0), tiny()).num_params()
}

/// Load the folder of `path` (writing `other`, the companion file, beside it first), and give
/// back every adapter tensor under the key it has in the file.
fn load_folder(path: &Path, other: (&str, &[u8])) -> plies_autodiff::Result<Loaded> {
    let dir = path.parent().expect("a case file has a folder");
    let companion = dir.join(other.0);
    if !companion.exists() {
        std::fs::write(&companion, other.1).map_err(|e| plies_autodiff::Error::io(&companion, e))?;
    }
    // A fresh model each time: a loaded adapter stays attached to the model it was loaded on.
    let g = Gpt::new(&mut Init::new(0), tiny());
    let (lora, _) = Lora::from_pretrained(&g, dir, &mut Init::new(1))?;
    let mut got: Vec<(String, Array)> = Vec::new();
    for l in lora.layers() {
        for (suffix, t) in l.unit_tensors("default") {
            got.push((format!("base_model.model.{}.{suffix}", l.path), t.value()));
        }
    }
    Ok(Box::new(got))
}

/// Everything a load holds besides the weights file's own load: the base model (its values
/// and, for DoRA, one weight-sized temporary of W + s·BA at a time), the adapter's fresh
/// initialisation before the file's values replace it (at most the file's values again), and
/// the config's parse (paid for by its bytes).
fn load_extra(weights: &[u8], config_len: usize) -> usize {
    let (_, d) = checkpoints::sizes(weights);
    3 * model_bytes() + 2 * d + 64 * config_len + (64 << 10)
}

struct Weights {
    config: String,
}

impl Format for Weights {
    fn name(&self) -> &'static str {
        "adapter weights"
    }
    fn file_name(&self) -> &'static str {
        WEIGHTS
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        // Two adapters of one config: different values, the same keys.
        vec![saved(lora_config(), 1).0, saved(lora_config(), 2).0]
    }
    fn fields(&self, seed: &[u8]) -> Vec<Field> {
        length_field(seed)
    }
    fn semantic(&self, bytes: &[u8], variant: u8, p: u64) -> Option<(Vec<u8>, Expect)> {
        let (b, e) = safetensors_semantic(bytes, variant, p, &|_| true)?;
        // A renamed key no longer fits the model.
        Some((b, if variant % 20 == 19 { Expect::Fails } else { e }))
    }
    fn load(&self, path: &Path) -> plies_autodiff::Result<Loaded> {
        load_folder(path, (CONFIG, self.config.as_bytes()))
    }
    fn verify(&self, bytes: &[u8], out: &dyn Any) -> Result<(), String> {
        verify_arrays(bytes, out.downcast_ref::<Vec<(String, Array)>>().ok_or("not arrays")?, true)
    }
    fn bound(&self, bytes: &[u8], _: Option<&dyn Any>) -> usize {
        base_bound(bytes) + load_extra(bytes, self.config.len())
    }
}

struct Config {
    weights: Vec<u8>,
}

impl Format for Config {
    fn name(&self) -> &'static str {
        "adapter config"
    }
    fn file_name(&self) -> &'static str {
        CONFIG
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        vec![saved(dora_config(), 3).1.into_bytes()]
    }
    fn fields(&self, _: &[u8]) -> Vec<Field> {
        Vec::new()
    }
    fn semantic(&self, bytes: &[u8], variant: u8, p: u64) -> Option<(Vec<u8>, Expect)> {
        let mut c: Value = serde_json::from_slice(bytes).ok()?;
        let obj = c.as_object_mut()?;
        let expect = match variant % 16 {
            0 => {
                obj.insert(
                    "r".into(),
                    [json!(0), json!(-1), json!(3), json!(1u64 << 40), json!(2.5)][(p % 5) as usize].clone(),
                );
                Expect::Fails
            }
            1 => {
                obj.insert("lora_alpha".into(), json!(["x", "", "4"][(p % 3) as usize]));
                Expect::Fails
            }
            2 => {
                obj.insert("peft_type".into(), json!(["IA3", "lora", "", "PREFIX_TUNING"][(p % 4) as usize]));
                Expect::Fails
            }
            3 => {
                obj.insert(
                    "target_modules".into(),
                    json!([json!(5), json!([]), json!(["nothing"]), json!(["qkv"])][(p % 4) as usize]),
                );
                Expect::Fails
            }
            4 => {
                obj.insert("use_dora".into(), json!([json!("yes"), json!(false), json!(1)][(p % 3) as usize]));
                Expect::Fails
            }
            5 => {
                let r = [0u64, 5, 1][(p % 3) as usize];
                obj.insert("rank_pattern".into(), json!({ "qkv": r }));
                Expect::Fails
            }
            6 => {
                obj.insert("lora_dropout".into(), json!([1.5, -0.1][(p % 2) as usize]));
                Expect::Fails
            }
            7 => {
                obj.insert("layers_to_transform".into(), json!([[1], [99], [0]][(p % 3) as usize]));
                Expect::Fails
            }
            8 => {
                obj.insert("bias".into(), json!(["all", "lora_only"][(p % 2) as usize]));
                Expect::Fails
            }
            9 => {
                obj.insert("fan_in_fan_out".into(), json!(true));
                Expect::Fails
            }
            10 => {
                let keys: Vec<String> = ["peft_type", "target_modules"].iter().map(|s| s.to_string()).collect();
                obj.remove(&keys[(p % 2) as usize]);
                Expect::Fails
            }
            11 => {
                // Fields PEFT has and Plies does not are dropped, as PEFT drops unknown ones.
                obj.insert(format!("megatron_{}", p % 100), json!(null));
                Expect::Loads
            }
            12 => {
                // The same config, formatted otherwise.
                return Some((c.to_string().into_bytes(), Expect::Loads));
            }
            13 => {
                obj.insert("use_rslora".into(), json!(true));
                Expect::Loads
            }
            14 => return Some((b"[]".repeat(1 + (p % 4) as usize), Expect::Fails)),
            _ => return Some((vec![b'{'; 1 + (p % 200) as usize], Expect::Fails)),
        };
        Some((serde_json::to_vec_pretty(&c).ok()?, expect))
    }
    fn load(&self, path: &Path) -> plies_autodiff::Result<Loaded> {
        load_folder(path, (WEIGHTS, &self.weights))
    }
    fn verify(&self, _: &[u8], out: &dyn Any) -> Result<(), String> {
        verify_arrays(&self.weights, out.downcast_ref::<Vec<(String, Array)>>().ok_or("not arrays")?, true)
    }
    fn bound(&self, bytes: &[u8], _: Option<&dyn Any>) -> usize {
        base_bound(&self.weights) + load_extra(&self.weights, bytes.len())
    }
}

#[test]
fn adapter_weights() {
    run(&Weights { config: saved(lora_config(), 1).1 });
}

#[test]
fn adapter_config() {
    run(&Config { weights: saved(dora_config(), 3).0 });
}

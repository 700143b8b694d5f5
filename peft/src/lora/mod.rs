//! LoRA and DoRA as HF PEFT does them (peft 0.21, `src/peft/tuners/lora/`): the choice of
//! target modules, ranks, alphas and scaling; initialisation; several named adapters with one
//! active; disabling, run-time scaling, merging; and adapter files PEFT loads and writes.
//!
//! ```
//! use plies_nn::layers::{Gpt, GptConfig};
//! use plies_nn::{Init, Module};
//! use plies_peft::lora::{Lora, LoraConfig};
//!
//! let cfg = GptConfig { vocab_size: 11, context: 8, d_model: 8, n_layer: 2, n_head: 2, ..GptConfig::char_small() };
//! let model = Gpt::new(&mut Init::new(0), cfg);
//! let lora = Lora::new(&model, LoraConfig::new(4, 8.0, &["qkv", "proj", "fc1", "fc2"]), &mut Init::new(1))?;
//! // The base is frozen; only A and B of the 8 adapted Linears train.
//! let trainable = model.trainable_parameters();
//! assert_eq!(trainable.len(), 2 * 4 * 2);
//! assert!(trainable.iter().all(|p| p.name.contains("lora_")));
//! let dir = std::env::temp_dir().join(format!("plies-doc-lora-{}", std::process::id()));
//! lora.save_pretrained(&dir)?; // adapter_model.safetensors + adapter_config.json
//! assert!(dir.join("adapter_config.json").exists());
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), plies_autodiff::Error>(())
//! ```

mod config;
mod dora;
mod file;
mod layer;
mod model;
pub mod regex;

pub use config::{InitLora, LoraConfig, ModuleLora, ModuleMatch};
pub use dora::row_norms;
pub use file::LoadReport;
pub use layer::{Base, LoraLayer, LoraUnit};
pub(crate) use model::find_targets;
pub use model::{Lora, Restore};

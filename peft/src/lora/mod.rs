//! LoRA and DoRA as HF PEFT does them (peft 0.21, `src/peft/tuners/lora/`): the choice of
//! target modules, ranks, alphas and scaling; initialisation; several named adapters with one
//! active; disabling, run-time scaling, merging; and adapter files PEFT loads and writes.
//!
//! ```ignore
//! let lora = Lora::new(&model, LoraConfig::new(8, 16.0, &["qkv", "proj", "fc1", "fc2"]), &mut init)?;
//! // train model.trainable_parameters() ...
//! lora.save_pretrained("runs/x/adapter")?;
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

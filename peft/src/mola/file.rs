//! MoLA adapter files in the LoRA files' layout: `adapter_model.safetensors` (keys
//! `base_model.model.<path>.lora_router.weight`, `...lora_A.<e>.weight`, `...lora_B.<e>.weight`,
//! metadata `{"format": "pt"}`) and `adapter_config.json` recording the allocation.

use super::config::MolaConfig;
use super::model::{plan, Mola};
use crate::lora::LoadReport;
use plies_autodiff::{Array, Device, Error, Result};
use plies_nn::checkpoint::{load_tensors, save_tensors};
use plies_nn::{Init, Module};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
pub const CONFIG_FILE: &str = "adapter_config.json";
const PREFIX: &str = "base_model.model.";

impl Mola {
    /// Write the experts, routers and config under `dir` (created if needed).
    pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut tensors = Vec::new();
        for l in self.layers() {
            for (suffix, t) in l.tensors() {
                tensors.push((format!("{PREFIX}{}.{suffix}", l.path), t.value()));
            }
        }
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        save_tensors(dir.join(WEIGHTS_FILE), &tensors, &meta)?;
        let per_layer: Vec<usize> = self.allocation().iter().map(|&(_, e)| e).collect();
        let path = dir.join(CONFIG_FILE);
        std::fs::write(&path, self.config().to_json(&per_layer)).map_err(|e| Error::io(&path, e))
    }

    /// Attach the experts saved in `dir` to `model` (freezing the base). The config's
    /// recorded per-layer allocation must be what its allocation gives on this model, and
    /// the weights file must hold exactly the keys and shapes the config makes; otherwise
    /// an error names the file and each offending key, and the model is left unchanged.
    pub fn from_pretrained(model: &dyn Module, dir: impl AsRef<Path>, init: &mut Init) -> Result<(Mola, LoadReport)> {
        let dir = dir.as_ref();
        let config_file = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_file).map_err(|e| Error::io(&config_file, e))?;
        let cfile = config_file.display().to_string();
        let (config, recorded, unknown) = MolaConfig::from_json(&text, &cfile)?;
        let weights_file = dir.join(WEIGHTS_FILE);
        let device = model.device()?.unwrap_or(Device::Cpu);
        let file = load_tensors(&weights_file, device)?;
        let (plan, allocation) = plan(model, &config)?;
        let per_layer: Vec<usize> = allocation.iter().map(|&(_, e)| e).collect();
        if per_layer != recorded {
            return Err(Error::Format {
                path: cfile,
                at: "key `experts_per_layer`".into(),
                msg: format!("records {recorded:?}, but the allocation gives {per_layer:?} on this model"),
            });
        }
        let mut want: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for p in &plan {
            let d = p.weight.dims();
            let key = |s: String| format!("{PREFIX}{}.{s}", p.path);
            want.insert(key("lora_router.weight".into()), vec![p.experts, d[1]]);
            for e in 0..p.experts {
                want.insert(key(format!("lora_A.{e}.weight")), vec![p.r, d[1]]);
                want.insert(key(format!("lora_B.{e}.weight")), vec![d[0], p.r]);
            }
        }
        let mut problems = Vec::new();
        for (k, shape) in &want {
            match file.tensors.get(k) {
                None => problems.push(format!("missing `{k}` {shape:?}")),
                Some(a) if a.dims() != shape.as_slice() => {
                    problems.push(format!("`{k}` is {:?} in the file but {shape:?} in the model", a.dims()))
                }
                Some(_) => {}
            }
        }
        let mut extra: Vec<&String> = file.tensors.keys().filter(|k| !want.contains_key(*k)).collect();
        extra.sort();
        problems.extend(extra.into_iter().map(|k| format!("unexpected `{k}`")));
        if !problems.is_empty() {
            return Err(Error::Format {
                path: weights_file.display().to_string(),
                at: "keys".into(),
                msg: format!("does not fit the model and config: {}", problems.join("; ")),
            });
        }
        let mola = Mola::new(model, config, init)?;
        for l in mola.layers() {
            for (suffix, t) in l.tensors() {
                let v: &Array = &file.tensors[&format!("{PREFIX}{}.{suffix}", l.path)];
                t.set_value(v.to_dtype(t.dtype())?.to_device(t.device())?)?;
            }
        }
        Ok((mola, LoadReport { ignored_config_fields: unknown, config_file, weights_file }))
    }
}

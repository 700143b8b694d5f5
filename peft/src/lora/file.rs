//! Adapter files in HF PEFT's layout: `adapter_model.safetensors` (keys
//! `base_model.model.<module path>.lora_A.weight` ..., metadata `{"format": "pt"}`) and
//! `adapter_config.json`, one folder per adapter ("default" in the folder itself, any other
//! in a subfolder named after it, as `save_pretrained` does).

use super::config::LoraConfig;
use super::layer::Base;
use super::model::{find_targets, Lora};
use plies_autodiff::{Error, Result};
use plies_nn::checkpoint::{load_tensors, save_tensors};
use plies_nn::{Init, Module};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
pub const CONFIG_FILE: &str = "adapter_config.json";
const PREFIX: &str = "base_model.model.";

/// What loading found besides the tensors: the config fields PEFT has and Plies does not
/// (dropped, as PEFT drops unknown fields), and the files read.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub ignored_config_fields: Vec<String>,
    pub config_file: PathBuf,
    pub weights_file: PathBuf,
}

fn folder(dir: &Path, name: &str) -> PathBuf {
    if name == "default" {
        dir.to_path_buf()
    } else {
        dir.join(name)
    }
}

/// The keys and shapes adapter files for `config` on `model` hold.
fn expected(model: &dyn Module, config: &LoraConfig) -> Result<BTreeMap<String, Vec<usize>>> {
    let mut out = BTreeMap::new();
    for (path, base, _) in find_targets(model, config)? {
        let r = config.for_module(&path)?.r;
        let d = base.weight().dims();
        let key = |s: &str| format!("{PREFIX}{path}.{s}");
        match base {
            Base::Linear { .. } => {
                out.insert(key("lora_A.weight"), vec![r, d[1]]);
                out.insert(key("lora_B.weight"), vec![d[0], r]);
                if config.use_dora {
                    out.insert(key("lora_magnitude_vector"), vec![d[0]]);
                }
            }
            Base::Embedding { .. } => {
                out.insert(key("lora_embedding_A"), vec![r, d[0]]);
                out.insert(key("lora_embedding_B"), vec![d[1], r]);
            }
        }
    }
    Ok(out)
}

fn read_config(dir: &Path) -> Result<(LoraConfig, Vec<String>, PathBuf)> {
    let path = dir.join(CONFIG_FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    // Bytes, not read_to_string: std's UTF-8 error does not say where the bad byte is.
    let text = String::from_utf8(bytes).map_err(|e| Error::Format {
        path: path.display().to_string(),
        at: format!("byte {}", e.utf8_error().valid_up_to()),
        msg: "not UTF-8 text (a JSON config is UTF-8)".into(),
    })?;
    let (c, unknown) = LoraConfig::from_json(&text, &path.display().to_string())?;
    Ok((c, unknown, path))
}

impl Lora {
    /// Write every adapter in PEFT's layout under `dir` (created if needed).
    pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
        for name in self.adapter_names() {
            let out = folder(dir.as_ref(), &name);
            std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
            let mut tensors = Vec::new();
            for l in self.layers() {
                for (suffix, t) in l.unit_tensors(&name) {
                    tensors.push((format!("{PREFIX}{}.{suffix}", l.path), t.value()));
                }
            }
            let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
            save_tensors(out.join(WEIGHTS_FILE), &tensors, &meta)?;
            let cfg = self.config(&name).expect("every adapter name has a config");
            let path = out.join(CONFIG_FILE);
            std::fs::write(&path, cfg.to_json()).map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }

    /// Attach the adapter saved in `dir` (by Plies or PEFT's `save_pretrained`) as
    /// "default", freezing the base (PEFT's `PeftModel.from_pretrained`).
    pub fn from_pretrained(model: &dyn Module, dir: impl AsRef<Path>, init: &mut Init) -> Result<(Lora, LoadReport)> {
        let (config, unknown, config_file) = read_config(dir.as_ref())?;
        let (weights, weights_file) = read_weights(model, &config, &config_file, dir.as_ref())?;
        let lora = Lora::new(model, config, init)?;
        lora.assign("default", &weights, &weights_file)?;
        Ok((lora, LoadReport { ignored_config_fields: unknown, config_file, weights_file }))
    }

    /// Add the adapter saved in `dir` under `name` (PEFT's `load_adapter`); it starts
    /// inactive. Nothing changes when the files do not fit the model.
    pub fn load_adapter(
        &mut self,
        model: &dyn Module,
        dir: impl AsRef<Path>,
        name: &str,
        init: &mut Init,
    ) -> Result<LoadReport> {
        let (config, unknown, config_file) = read_config(dir.as_ref())?;
        let (weights, weights_file) = read_weights(model, &config, &config_file, dir.as_ref())?;
        self.add_adapter(model, name, config, init)?;
        self.assign(name, &weights, &weights_file)?;
        Ok(LoadReport { ignored_config_fields: unknown, config_file, weights_file })
    }

    fn assign(&self, name: &str, weights: &HashMap<String, plies_autodiff::Array>, file: &Path) -> Result<()> {
        for l in self.layers() {
            for (suffix, t) in l.unit_tensors(name) {
                let key = format!("{PREFIX}{}.{suffix}", l.path);
                let v = weights.get(&key).ok_or_else(|| Error::Format {
                    path: file.display().to_string(),
                    at: format!("tensor `{key}`"),
                    msg: "missing".into(),
                })?;
                t.set_value(v.to_dtype(t.dtype())?.to_device(t.device())?)?;
            }
        }
        Ok(())
    }
}

/// The tensors of `dir`'s weights file, after checking every key and shape against what
/// `config` makes of `model`; the error names each missing, unexpected or mismatched key.
fn read_weights(
    model: &dyn Module,
    config: &LoraConfig,
    config_file: &Path,
    dir: &Path,
) -> Result<(HashMap<String, plies_autodiff::Array>, PathBuf)> {
    let path = dir.join(WEIGHTS_FILE);
    // A config that selects no module (or a bad pattern) is the config file's fault.
    let want = expected(model, config).map_err(|e| Error::Format {
        path: config_file.display().to_string(),
        at: "keys `target_modules`, `exclude_modules`, `layers_to_transform`, `rank_pattern`".into(),
        msg: e.to_string(),
    })?;
    let device = model.device()?.unwrap_or(plies_autodiff::Device::Cpu);
    let file = load_tensors(&path, device)?;
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
            path: path.display().to_string(),
            at: "keys".into(),
            msg: format!("does not fit the model and the config {}: {}", config_file.display(), problems.join("; ")),
        });
    }
    Ok((file.tensors, path))
}

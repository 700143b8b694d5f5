//! Checkpoints in safetensors. Model files hold exactly the module's named parameters
//! under their PyTorch-style names, so `safetensors.torch.load_file` plus
//! `load_state_dict` restores them into the same architecture in PyTorch; optimizer state
//! goes to its own file (`{param}.exp_avg`, ...). Loading checks every key, shape and
//! dtype before assigning anything, and reports all missing, unexpected and mismatched
//! keys in one error naming the file.
//!
//! Training states ([`TrainState`], [`Checkpoints`]) add what a training loop needs to go on
//! after a kill: optimizer state, loader position, generators and metrics (see `state.rs`).

mod atomic;
mod file;
mod header;
mod state;

pub use atomic::write_atomic;
pub use file::{load_tensors, save_tensors, TensorFile};
pub use state::{Checkpoints, Resumed, RunMetrics, TrainState, STATE_KEY};

use crate::init::Init;
use crate::layers::{Gpt, GptConfig};
use crate::module::{Module, NamedParam};
use crate::optim::Optimizer;
use plies_autodiff::{Array, Device, Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// Metadata key holding a GPT's configuration as JSON.
pub const CONFIG_KEY: &str = "plies.config";

/// Save a module's parameters (and string metadata) to `path`.
///
/// ```
/// use plies_nn::checkpoint::{load_model, save_model};
/// use plies_nn::prelude::*;
/// use std::collections::HashMap;
///
/// let path = std::env::temp_dir().join(format!("plies-doc-{}.safetensors", std::process::id()));
/// let a = Linear::new(&mut Init::new(1), 4, 2, true);
/// save_model(&a, &path, &HashMap::from([("note".to_string(), "doc".to_string())]))?;
/// let b = Linear::new(&mut Init::new(2), 4, 2, true);
/// let meta = load_model(&b, &path)?;
/// assert_eq!(meta["note"], "doc");
/// assert_eq!(b.weight.to_vec::<f32>(), a.weight.to_vec::<f32>());
/// // A model of another shape is refused, naming the file and the tensor.
/// let c = Linear::new(&mut Init::new(3), 5, 2, true);
/// let e = load_model(&c, &path).unwrap_err().to_string();
/// assert!(e.contains("plies-doc") && e.contains("weight"), "{e}");
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), plies_autodiff::Error>(())
/// ```
pub fn save_model(model: &dyn Module, path: impl AsRef<Path>, metadata: &HashMap<String, String>) -> Result<()> {
    save_tensors(path, &model.state_dict(), metadata)
}

/// What a non-strict load found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Parameters of the module the file lacks.
    pub missing: Vec<String>,
    /// Tensors of the file the module lacks.
    pub unexpected: Vec<String>,
    /// `name: expected .., file has ..` for keys whose shape or dtype differ.
    pub mismatched: Vec<String>,
    pub metadata: HashMap<String, String>,
}

impl LoadReport {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        let list = |v: &[String]| v.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ");
        if !self.missing.is_empty() {
            parts.push(format!("{} missing: {}", self.missing.len(), list(&self.missing)));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!("{} unexpected: {}", self.unexpected.len(), list(&self.unexpected)));
        }
        if !self.mismatched.is_empty() {
            parts.push(format!("{} mismatched: {}", self.mismatched.len(), self.mismatched.join("; ")));
        }
        parts.join("; ")
    }
}

/// Load parameters saved by `save_model` into `model`. Strict: any missing, unexpected or
/// mismatched key is an error and nothing is assigned. Returns the file's metadata.
pub fn load_model(model: &dyn Module, path: impl AsRef<Path>) -> Result<HashMap<String, String>> {
    Ok(load_model_with(model, path, true)?.metadata)
}

/// Load parameters; with `strict = false`, missing and unexpected keys are reported
/// instead of refused (e.g. loading a shallower model into a grown one). Shape or dtype
/// mismatches are always errors.
pub fn load_model_with(model: &dyn Module, path: impl AsRef<Path>, strict: bool) -> Result<LoadReport> {
    let path = path.as_ref();
    let file = load_tensors(path, Device::Cpu)?;
    let (mut report, assign) = fit_model(model, &file.tensors, path, strict)?;
    report.metadata = file.metadata;
    for (p, a) in assign {
        p.tensor.set_value(a)?;
    }
    Ok(report)
}

/// Check `tensors` (read from `path`) against the model's parameters without assigning
/// anything: what fits, moved to each parameter's device, or an error naming the file and
/// every missing, unexpected and mismatched key.
pub(crate) fn fit_model(
    model: &dyn Module,
    tensors: &HashMap<String, Array>,
    path: &Path,
    strict: bool,
) -> Result<(LoadReport, Vec<(NamedParam, Array)>)> {
    let params = model.named_parameters();
    let mut report = LoadReport::default();
    let mut assign = Vec::new();
    for p in &params {
        let v = p.tensor.value();
        match tensors.get(&p.name) {
            None => report.missing.push(p.name.clone()),
            Some(a) if a.shape() != v.shape() || a.dtype() != v.dtype() => report.mismatched.push(format!(
                "`{}` expected {} {}, file has {} {}",
                p.name,
                v.dtype(),
                v.shape(),
                a.dtype(),
                a.shape()
            )),
            Some(a) => assign.push((p.clone(), a.to_device(v.device())?)),
        }
    }
    let known: std::collections::HashSet<&str> = params.iter().map(|p| p.name.as_str()).collect();
    report.unexpected = tensors.keys().filter(|k| !known.contains(k.as_str())).cloned().collect();
    report.unexpected.sort();
    let refuse = !report.mismatched.is_empty() || (strict && !report.is_clean());
    if refuse {
        return Err(Error::Format {
            path: path.display().to_string(),
            at: "state dict".into(),
            msg: format!("does not fit the model: {}", report.describe()),
        });
    }
    Ok((report, assign))
}

/// Save an optimizer's state to its own file.
pub fn save_optimizer(opt: &dyn Optimizer, path: impl AsRef<Path>) -> Result<()> {
    save_tensors(path, &opt.state_dict(), &HashMap::new())
}

/// Restore optimizer state saved by `save_optimizer`; errors name the file.
pub fn load_optimizer(opt: &mut dyn Optimizer, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let file = load_tensors(path, Device::Cpu)?;
    opt.load_state_dict(&file.tensors).map_err(|e| Error::Format {
        path: path.display().to_string(),
        at: "optimizer state".into(),
        msg: e.to_string(),
    })
}

/// Save a GPT with its configuration in the file's metadata (key [`CONFIG_KEY`]), plus
/// any extra metadata (e.g. the character vocabulary), so PyTorch or `load_gpt` can
/// rebuild the model from the file alone.
pub fn save_gpt(model: &Gpt, path: impl AsRef<Path>, extra: &HashMap<String, String>) -> Result<()> {
    let mut meta = extra.clone();
    meta.insert(CONFIG_KEY.into(), model.config.to_json());
    save_model(model, path, &meta)
}

/// Rebuild a GPT from a file written by `save_gpt`; returns it with the file's metadata.
pub fn load_gpt(path: impl AsRef<Path>, init: &mut Init) -> Result<(Gpt, HashMap<String, String>)> {
    let path = path.as_ref();
    let file = load_tensors(path, Device::Cpu)?;
    let cfg = file.metadata.get(CONFIG_KEY).ok_or_else(|| Error::Format {
        path: path.display().to_string(),
        at: "metadata".into(),
        msg: format!("no `{CONFIG_KEY}` entry: not saved by save_gpt"),
    })?;
    let config = GptConfig::from_json(cfg).map_err(|e| Error::Format {
        path: path.display().to_string(),
        at: format!("metadata `{CONFIG_KEY}`"),
        msg: e.to_string(),
    })?;
    check_gpt_config(path, &config, &file)?;
    drop(file);
    let model = Gpt::new(init, config);
    let meta = load_model(&model, path)?;
    Ok((model, meta))
}

/// Refuse a configuration that `Gpt::new` would panic on, or that describes more tensors or
/// values than the file holds: a corrupt config must not make us build a model bigger than
/// the file (a `d_model` of 2^40 would otherwise allocate terabytes before the tensors are
/// compared). The exact names and shapes are checked by `load_model` afterwards.
fn check_gpt_config(path: &Path, c: &GptConfig, file: &TensorFile) -> Result<()> {
    let bad =
        |msg: String| Error::Format { path: path.display().to_string(), at: format!("metadata `{CONFIG_KEY}`"), msg };
    if c.n_head == 0 || !c.d_model.is_multiple_of(c.n_head) {
        return Err(bad(format!("d_model {} is not a multiple of n_head {}", c.d_model, c.n_head)));
    }
    if !(0.0..1.0).contains(&c.dropout) {
        return Err(bad(format!("dropout {} is outside [0, 1)", c.dropout)));
    }
    if !c.ln_eps.is_finite() {
        return Err(bad(format!("ln_eps {} is not finite", c.ln_eps)));
    }
    let in_file: usize = file.tensors.values().map(|a| a.elem_count()).sum();
    // Tensors: two embeddings, 12 per block (two LayerNorms, qkv, proj, fc1, fc2: weight and
    // bias each), the final LayerNorm and the head (weight and bias each).
    let tensors = c.n_layer.checked_mul(12).and_then(|t| t.checked_add(6));
    let values = gpt_values(c);
    match (tensors, values) {
        (Some(t), Some(v)) if t <= file.tensors.len() && v <= in_file => Ok(()),
        _ => Err(bad(format!(
            "describes a model of {} tensors and {} values, but the file holds {} tensors and {in_file} values",
            tensors.map_or("too many".into(), |t| t.to_string()),
            values.map_or("too many".into(), |v| v.to_string()),
            file.tensors.len()
        ))),
    }
}

/// Parameter values of the GPT `c` describes, or None when the count overflows.
fn gpt_values(c: &GptConfig) -> Option<usize> {
    let d = c.d_model;
    let (v, hidden) = (c.vocab_size, c.mlp_ratio.checked_mul(d)?);
    let sq = d.checked_mul(d)?;
    // ln1 + ln2 (4d), qkv (3d^2 + 3d), proj (d^2 + d), fc1 (d h + h), fc2 (h d + d).
    let block = [d.checked_mul(9)?, sq.checked_mul(4)?, d.checked_mul(hidden)?.checked_mul(2)?, hidden]
        .into_iter()
        .try_fold(0usize, |a, x| a.checked_add(x))?;
    // Embeddings (v d + context d), blocks, ln_f (2d), head (d v + v).
    [v.checked_mul(d)?.checked_mul(2)?, c.context.checked_mul(d)?, c.n_layer.checked_mul(block)?, d.checked_mul(2)?, v]
        .into_iter()
        .try_fold(0usize, |a, x| a.checked_add(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt_values_counts_what_gpt_new_builds() {
        for (v, ctx, d, l, h, r) in [(13, 8, 8, 1, 2, 4), (5, 3, 6, 3, 3, 2), (65, 16, 4, 0, 1, 1)] {
            let c = GptConfig {
                vocab_size: v,
                context: ctx,
                d_model: d,
                n_layer: l,
                n_head: h,
                mlp_ratio: r,
                ..GptConfig::char_small()
            };
            let g = Gpt::new(&mut Init::new(0), c.clone());
            let params = g.named_parameters();
            assert_eq!(gpt_values(&c), Some(params.iter().map(|p| p.tensor.value().elem_count()).sum::<usize>()));
            assert_eq!(params.len(), 12 * l + 6);
        }
        let huge = GptConfig { d_model: 1 << 40, ..GptConfig::char_small() };
        assert_eq!(gpt_values(&huge), None);
    }
}

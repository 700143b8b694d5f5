//! `Lora`: the handle over every layer a set of adapters was attached to.

use super::config::LoraConfig;
use super::layer::{Base, LoraLayer};
use plies_autodiff::{Error, Result};
use plies_nn::layers::{Embedding, EmbeddingAdapter, Linear, LinearAdapter};
use plies_nn::{Init, Module};
use std::collections::HashMap;
use std::sync::Arc;

/// Named LoRA/DoRA adapters on a model, one active. The model keeps ownership of its layers;
/// each adapted Linear or Embedding holds the same `LoraLayer` this handle lists.
pub struct Lora {
    layers: Vec<Arc<LoraLayer>>,
    configs: Vec<(String, LoraConfig)>,
    active: Option<String>,
}

/// Restores what a scope changed when dropped (also when the code inside fails or panics).
#[must_use = "the change is undone when the guard is dropped"]
pub struct Restore<'a> {
    undo: Vec<Box<dyn FnOnce() + 'a>>,
}

impl<'a> Restore<'a> {
    /// A guard that runs `undo` in reverse order when dropped (MoLA's scaling uses it too).
    pub(crate) fn new(undo: Vec<Box<dyn FnOnce() + 'a>>) -> Restore<'a> {
        Restore { undo }
    }
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        for f in self.undo.drain(..).rev() {
            f();
        }
    }
}

impl Lora {
    /// Attach adapter "default" to `model` by `config` and freeze every base parameter
    /// (PEFT's `get_peft_model`). A and B are drawn from `init`.
    pub fn new(model: &dyn Module, config: LoraConfig, init: &mut Init) -> Result<Lora> {
        model.for_each_param(&mut |p| {
            p.tensor.set_requires_grad(false);
        });
        let mut lora = Lora { layers: Vec::new(), configs: Vec::new(), active: None };
        lora.add_adapter(model, "default", config, init)?;
        lora.set_adapter("default")?;
        Ok(lora)
    }

    /// Add another named adapter by its own config; it starts inactive and frozen, as in
    /// PEFT (`set_adapter` switches to it).
    pub fn add_adapter(&mut self, model: &dyn Module, name: &str, config: LoraConfig, init: &mut Init) -> Result<()> {
        config.validate()?;
        if self.configs.iter().any(|(n, _)| n == name) {
            return Err(Error::invalid("lora", format!("an adapter named `{name}` exists already")));
        }
        if name.is_empty() || name.contains(['/', '.']) {
            return Err(Error::invalid("lora", format!("adapter name `{name}` must be non-empty without `/` or `.`")));
        }
        let targets = find_targets(model, &config)?;
        // Attach after all checks, so a failing config leaves the model unchanged.
        let mut attach: Vec<(Arc<LoraLayer>, String)> = Vec::new();
        for (path, base, layer) in &targets {
            let existing = self.layers.iter().find(|l| &l.path == path).cloned();
            let l = match existing {
                Some(l) => l,
                None => {
                    let l = Arc::new(LoraLayer::new(path, *layer, base.clone()));
                    attach.push((l.clone(), path.clone()));
                    l
                }
            };
            let m = config.for_module(path)?;
            l.add(name, m, (config.lora_dropout, config.use_dora, config.init_lora_weights), init)?;
        }
        if !attach.is_empty() {
            let mut foreign = None;
            let by_path: HashMap<&str, &Arc<LoraLayer>> = attach.iter().map(|(l, p)| (p.as_str(), l)).collect();
            model.for_each_module(&mut |path, m| {
                let Some(l) = by_path.get(path) else { return };
                let any = m.as_any();
                if let Some(lin) = any.downcast_ref::<Linear>() {
                    if lin.adapter().is_some() {
                        foreign = Some(path.to_string());
                        return;
                    }
                    lin.set_adapter(Some((*l).clone() as Arc<dyn LinearAdapter>));
                } else if let Some(e) = any.downcast_ref::<Embedding>() {
                    if e.adapter().is_some() {
                        foreign = Some(path.to_string());
                        return;
                    }
                    e.set_adapter(Some((*l).clone() as Arc<dyn EmbeddingAdapter>));
                }
            });
            if let Some(p) = foreign {
                return Err(Error::invalid("lora", format!("`{p}` already has an adapter of another kind attached")));
            }
            self.layers.extend(attach.into_iter().map(|(l, _)| l));
        }
        self.configs.push((name.to_string(), config));
        if let Some(a) = self.active.clone() {
            self.set_adapter(&a)?;
        }
        Ok(())
    }

    /// The adapted layers, in model order of first attachment.
    pub fn layers(&self) -> &[Arc<LoraLayer>] {
        &self.layers
    }

    pub fn layer(&self, path: &str) -> Option<&Arc<LoraLayer>> {
        self.layers.iter().find(|l| l.path == path)
    }

    pub fn adapter_names(&self) -> Vec<String> {
        self.configs.iter().map(|(n, _)| n.clone()).collect()
    }

    pub fn config(&self, name: &str) -> Option<&LoraConfig> {
        self.configs.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    pub fn active_adapter(&self) -> Option<&str> {
        self.active.as_deref()
    }

    fn check_unmerged(&self, op: &str) -> Result<()> {
        match self.layers.iter().find_map(|l| l.merged_name().map(|n| (l.path.clone(), n))) {
            Some((p, n)) => Err(Error::invalid("lora", format!("{op}: `{p}` has adapter `{n}` merged; unmerge first"))),
            None => Ok(()),
        }
    }

    /// Make `name` the active adapter of every layer: it alone computes and trains.
    pub fn set_adapter(&mut self, name: &str) -> Result<()> {
        if self.config(name).is_none() {
            return Err(Error::invalid("lora", format!("no adapter `{name}` (adapters: {:?})", self.adapter_names())));
        }
        self.check_unmerged("set_adapter")?;
        for l in &self.layers {
            l.set_active(Some(name));
        }
        self.active = Some(name.to_string());
        Ok(())
    }

    /// Remove adapter `name` from every layer; if it was active, the first remaining one
    /// becomes active (PEFT's rule), or none.
    pub fn delete_adapter(&mut self, name: &str) -> Result<()> {
        if self.config(name).is_none() {
            return Err(Error::invalid("lora", format!("no adapter `{name}` (adapters: {:?})", self.adapter_names())));
        }
        for l in &self.layers {
            if l.merged_name().as_deref() == Some(name) {
                return Err(Error::invalid("lora", format!("`{}` has `{name}` merged; unmerge first", l.path)));
            }
        }
        for l in &self.layers {
            l.delete(name)?;
        }
        self.configs.retain(|(n, _)| n != name);
        if self.active.as_deref() == Some(name) {
            self.active = None;
            match self.configs.first().map(|(n, _)| n.clone()) {
                Some(next) => self.set_adapter(&next)?,
                None => self.layers.iter().for_each(|l| l.set_active(None)),
            }
        }
        Ok(())
    }

    /// A scope in which every layer computes its base output (PEFT's `disable_adapter()`).
    pub fn disabled(&self) -> Result<Restore<'_>> {
        self.check_unmerged("disable_adapters")?;
        for l in &self.layers {
            l.set_disabled(true);
        }
        Ok(Restore { undo: vec![Box::new(move || self.layers.iter().for_each(|l| l.set_disabled(false)))] })
    }

    /// Multiply the active adapter's scaling by `factor` on the layers `select` accepts
    /// (by path and layer index) until the guard drops, as IST's probes do.
    pub fn scaled(&self, factor: f64, select: impl Fn(&str, usize) -> bool) -> Result<Restore<'_>> {
        let mut undo: Vec<Box<dyn FnOnce() + '_>> = Vec::new();
        for l in self.layers.iter().filter(|l| select(&l.path, l.layer)) {
            let Some(s) = l.scaling() else { continue };
            l.set_scaling(s * factor)?;
            undo.push(Box::new(move || {
                let _ = l.set_scaling(s);
            }));
        }
        Ok(Restore { undo })
    }

    /// Fold the active adapter into every base weight; forward then costs what the base does.
    pub fn merge(&self) -> Result<()> {
        for (i, l) in self.layers.iter().enumerate() {
            if let Err(e) = l.merge() {
                for done in &self.layers[..i] {
                    let _ = done.unmerge();
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Undo `merge` on every layer.
    pub fn unmerge(&self) -> Result<()> {
        self.layers.iter().try_for_each(|l| l.unmerge())
    }

    /// Detach every adapter from `model`'s layers (the base stays as it is: merged if it was
    /// merged, frozen). The handle is empty afterwards.
    pub fn unload(&mut self, model: &dyn Module) {
        let paths: Vec<String> = self.layers.iter().map(|l| l.path.clone()).collect();
        model.for_each_module(&mut |path, m| {
            if !paths.iter().any(|p| p == path) {
                return;
            }
            if let Some(l) = m.as_any().downcast_ref::<Linear>() {
                l.set_adapter(None);
            } else if let Some(e) = m.as_any().downcast_ref::<Embedding>() {
                e.set_adapter(None);
            }
        });
        self.layers.clear();
        self.configs.clear();
        self.active = None;
    }
}

/// The modules `config` adapts: path, base layer and layer index, in model order; an
/// error if none, or if one is neither a Linear nor an Embedding.
pub(crate) fn find_targets(model: &dyn Module, config: &LoraConfig) -> Result<Vec<(String, Base, usize)>> {
    let layers = param_layers(model);
    let mut targets: Vec<(String, Base, usize)> = Vec::new();
    let mut unsupported = Vec::new();
    let mut err = None;
    model.for_each_module(&mut |path, m| {
        if err.is_some() {
            return;
        }
        match config.is_target(path) {
            Ok(false) => {}
            Err(e) => err = Some(e),
            Ok(true) => {
                let layer = layers.get(&format!("{path}.weight")).copied().unwrap_or(0);
                let any = m.as_any();
                if let Some(l) = any.downcast_ref::<Linear>() {
                    targets.push((path.into(), Base::Linear { weight: l.weight.clone(), bias: l.bias.clone() }, layer));
                } else if let Some(e) = any.downcast_ref::<Embedding>() {
                    if config.use_dora {
                        err = Some(Error::invalid("lora", format!("`{path}`: DoRA on an Embedding is not supported")));
                    }
                    targets.push((path.into(), Base::Embedding { weight: e.weight.clone() }, layer));
                } else {
                    unsupported.push(path.to_string());
                }
            }
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    if !unsupported.is_empty() {
        return Err(Error::invalid(
            "lora",
            format!("target modules {unsupported:?} are not Linear or Embedding layers (only those are supported)"),
        ));
    }
    if targets.is_empty() {
        let mut some = Vec::new();
        model.for_each_module(&mut |p, _| some.push(p.to_string()));
        some.truncate(8);
        return Err(Error::invalid(
            "lora",
            format!(
                "target modules {:?} match no module of the model (modules look like {some:?})",
                config.target_modules
            ),
        ));
    }
    Ok(targets)
}

/// Parameter name -> layer index.
fn param_layers(model: &dyn Module) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    model.for_each_param(&mut |p| {
        m.insert(p.name.to_string(), p.layer);
    });
    m
}

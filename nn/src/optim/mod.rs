//! Optimizers (SGD, Adam, AdamW) over parameter groups with per-group learning rates,
//! gradient clipping by global norm, and learning-rate schedules.
//!
//! Contract shared by every optimizer, which the layer-wise methods rely on: a parameter
//! whose gradient is absent this step (never reached by backward, frozen, or zeroed) is
//! left untouched: no update, no weight decay, no moment decay, no step count. Its state
//! is created lazily, at its first gradient, and keyed by the parameter's name so it can
//! be saved, loaded and reported per layer.

mod adam;
mod clip;
mod schedule;
mod sgd;

pub use adam::{Adam, AdamConfig};
pub use clip::clip_grad_norm;
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdConfig};

use crate::module::NamedParam;
use crate::stats::LayerStats;
use plies_autodiff::{Array, Error, Result};
use std::collections::{HashMap, HashSet};

/// Parameters that share hyper-parameters. Unset values take the optimizer's defaults.
#[derive(Clone, Debug)]
pub struct ParamGroup {
    pub params: Vec<NamedParam>,
    pub lr: Option<f64>,
    pub weight_decay: Option<f64>,
}

impl ParamGroup {
    pub fn new(params: Vec<NamedParam>) -> ParamGroup {
        ParamGroup { params, lr: None, weight_decay: None }
    }
    pub fn lr(mut self, lr: f64) -> ParamGroup {
        self.lr = Some(lr);
        self
    }
    pub fn weight_decay(mut self, wd: f64) -> ParamGroup {
        self.weight_decay = Some(wd);
        self
    }
}

impl From<Vec<NamedParam>> for ParamGroup {
    fn from(params: Vec<NamedParam>) -> Self {
        ParamGroup::new(params)
    }
}

/// A group with its hyper-parameters resolved.
#[derive(Clone, Debug)]
pub struct Group {
    pub params: Vec<NamedParam>,
    /// The learning rate of the next step.
    pub lr: f64,
    /// The learning rate schedules scale (`set_lr_factor`).
    pub base_lr: f64,
    pub weight_decay: f64,
}

/// An optimizer's parameter groups, and the learning rate and weight decay that a group
/// added later gets where it sets none. Reads as a slice of groups.
#[derive(Debug)]
pub struct Groups {
    list: Vec<Group>,
    lr: f64,
    weight_decay: f64,
}

impl Groups {
    pub(crate) fn new(groups: Vec<ParamGroup>, lr: f64, weight_decay: f64) -> Result<Groups> {
        Ok(Groups { list: resolve(groups, lr, weight_decay, &[])?, lr, weight_decay })
    }

    fn add(&mut self, group: ParamGroup) -> Result<()> {
        let g = resolve(vec![group], self.lr, self.weight_decay, &self.list)?;
        self.list.extend(g);
        Ok(())
    }
}

impl std::ops::Deref for Groups {
    type Target = [Group];
    fn deref(&self) -> &[Group] {
        &self.list
    }
}

/// Resolve groups against defaults, rejecting a parameter listed twice.
pub(crate) fn resolve(groups: Vec<ParamGroup>, lr: f64, weight_decay: f64, have: &[Group]) -> Result<Vec<Group>> {
    let mut seen: HashSet<String> = have.iter().flat_map(|g| g.params.iter().map(|p| p.name.clone())).collect();
    let mut out = Vec::new();
    for g in groups {
        for p in &g.params {
            if !seen.insert(p.name.clone()) {
                return Err(Error::invalid("optimizer", format!("parameter `{}` appears in two groups", p.name)));
            }
        }
        let lr = g.lr.unwrap_or(lr);
        out.push(Group { params: g.params, lr, base_lr: lr, weight_decay: g.weight_decay.unwrap_or(weight_decay) });
    }
    Ok(out)
}

/// The gradient to apply to `p` this step, or None to leave it alone.
pub(crate) fn grad_of(p: &NamedParam) -> Option<Array> {
    if !p.tensor.requires_grad() {
        return None;
    }
    p.tensor.grad()
}

/// Bytes of a set of arrays.
pub(crate) fn bytes(arrays: &[&Array]) -> usize {
    arrays.iter().map(|a| a.elem_count() * a.dtype().size_in_bytes()).sum()
}

pub trait Optimizer {
    /// Apply one update to every parameter that has a gradient.
    fn step(&mut self) -> Result<()>;

    /// The parameter groups with the defaults new groups get (the one field every
    /// optimizer keeps the same way; `groups` and `add_group` are built on it).
    fn param_groups(&self) -> &Groups;
    fn param_groups_mut(&mut self) -> &mut Groups;

    fn groups(&self) -> &[Group] {
        &self.param_groups().list
    }

    fn groups_mut(&mut self) -> &mut [Group] {
        &mut self.param_groups_mut().list
    }

    /// Add parameters (e.g. a newly grown block) with the optimizer's defaults filled in.
    fn add_group(&mut self, group: ParamGroup) -> Result<()> {
        self.param_groups_mut().add(group)
    }

    /// The per-parameter state as named arrays (`{param}.exp_avg`, ...), for checkpoints.
    fn state_dict(&self) -> Vec<(String, Array)>;

    /// Restore state saved by `state_dict`; every key must belong to a parameter of this
    /// optimizer with a matching shape.
    fn load_state_dict(&mut self, state: &HashMap<String, Array>) -> Result<()>;

    /// Bytes of optimizer state held for parameter `name` (0 before its first gradient).
    fn state_bytes_of(&self, name: &str) -> usize;

    fn state_bytes(&self) -> usize {
        self.groups().iter().flat_map(|g| &g.params).map(|p| self.state_bytes_of(&p.name)).sum()
    }

    /// Fill in `optimizer_bytes` of per-layer stats from a module's `layer_stats`.
    fn add_state_bytes(&self, stats: &mut [LayerStats]) {
        for p in self.groups().iter().flat_map(|g| &g.params) {
            if let Some(s) = stats.get_mut(p.layer) {
                s.optimizer_bytes += self.state_bytes_of(&p.name);
            }
        }
    }

    /// Drop the gradients of all parameters of this optimizer.
    fn zero_grad(&self) {
        for p in self.groups().iter().flat_map(|g| &g.params) {
            p.tensor.zero_grad();
        }
    }

    /// Set every group's learning rate to `factor` times its base rate (for schedules).
    fn set_lr_factor(&mut self, factor: f64) {
        for g in self.groups_mut() {
            g.lr = g.base_lr * factor;
        }
    }

    /// Set every group's base and current learning rate.
    fn set_lr(&mut self, lr: f64) {
        for g in self.groups_mut() {
            g.lr = lr;
            g.base_lr = lr;
        }
    }
}

/// Split a state dict key `{param}.{slot}` for a known set of slots.
pub(crate) fn split_key<'a>(key: &'a str, slots: &[&str]) -> Option<(&'a str, &'a str)> {
    let (name, slot) = key.rsplit_once('.')?;
    slots.contains(&slot).then_some((name, slot))
}

/// Check a loaded state entry against its parameter.
pub(crate) fn check_state(key: &str, a: &Array, p: &NamedParam, want_param_shape: bool) -> Result<Array> {
    let v = p.tensor.value();
    let ok_shape = if want_param_shape { a.shape() == v.shape() } else { a.elem_count() == 1 };
    if !ok_shape {
        return Err(Error::invalid(
            "optimizer load_state_dict",
            format!("`{key}` has shape {}, parameter `{}` has shape {}", a.shape(), p.name, v.shape()),
        ));
    }
    if want_param_shape {
        a.to_dtype(v.dtype())?.to_device(v.device())
    } else {
        Ok(a.clone())
    }
}

/// Map every state key to its parameter, or fail listing the keys that match none.
pub(crate) fn params_by_name(groups: &[Group]) -> HashMap<&str, &NamedParam> {
    groups.iter().flat_map(|g| &g.params).map(|p| (p.name.as_str(), p)).collect()
}

pub(crate) fn unexpected_keys(state: &HashMap<String, Array>, groups: &[Group], slots: &[&str]) -> Result<()> {
    let by_name = params_by_name(groups);
    let mut bad: Vec<String> = state
        .keys()
        .filter(|k| split_key(k, slots).is_none_or(|(n, _)| !by_name.contains_key(n)))
        .map(|k| format!("`{k}`"))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    bad.sort();
    Err(Error::invalid(
        "optimizer load_state_dict",
        format!("{} key(s) match no parameter of this optimizer: {}", bad.len(), bad.join(", ")),
    ))
}

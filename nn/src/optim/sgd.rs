//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and (coupled)
//! weight decay, following PyTorch's `torch.optim.SGD`.

use super::{bytes, check_state, grad_of, unexpected_keys, Groups, Optimizer, ParamGroup};
use crate::module::NamedParam;
use plies_autodiff::{Array, Error, Result};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl SgdConfig {
    pub fn new(lr: f64) -> SgdConfig {
        SgdConfig { lr, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false }
    }
    pub fn momentum(mut self, m: f64) -> SgdConfig {
        self.momentum = m;
        self
    }
    pub fn nesterov(mut self, on: bool) -> SgdConfig {
        self.nesterov = on;
        self
    }
    pub fn weight_decay(mut self, wd: f64) -> SgdConfig {
        self.weight_decay = wd;
        self
    }
}

pub struct Sgd {
    groups: Groups,
    pub config: SgdConfig,
    /// Momentum buffers, created at a parameter's first gradient.
    momentum: HashMap<String, Array>,
}

const SLOTS: [&str; 1] = ["momentum_buffer"];

impl Sgd {
    pub fn new(params: Vec<NamedParam>, config: SgdConfig) -> Result<Sgd> {
        Sgd::with_groups(vec![ParamGroup::new(params)], config)
    }

    pub fn with_groups(groups: Vec<ParamGroup>, config: SgdConfig) -> Result<Sgd> {
        if config.nesterov && (config.momentum <= 0.0 || config.dampening != 0.0) {
            return Err(Error::invalid("sgd", "Nesterov momentum needs momentum > 0 and zero dampening"));
        }
        let groups = Groups::new(groups, config.lr, config.weight_decay)?;
        Ok(Sgd { groups, config, momentum: HashMap::new() })
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        let c = self.config;
        for g in self.groups.iter() {
            for p in &g.params {
                let Some(mut d) = grad_of(p) else { continue };
                let value = p.tensor.value();
                if g.weight_decay != 0.0 {
                    d = d.add(&value.mul_scalar(g.weight_decay)?)?;
                }
                if c.momentum != 0.0 {
                    let buf = match self.momentum.get(&p.name) {
                        None => d.contiguous()?,
                        // The buffer follows a parameter moved to another device.
                        Some(b) => b
                            .to_device(value.device())?
                            .mul_scalar(c.momentum)?
                            .add(&d.mul_scalar(1.0 - c.dampening)?)?,
                    };
                    d = if c.nesterov { d.add(&buf.mul_scalar(c.momentum)?)? } else { buf.clone() };
                    self.momentum.insert(p.name.clone(), buf);
                }
                p.tensor.set_value(value.sub(&d.mul_scalar(g.lr)?)?)?;
            }
        }
        Ok(())
    }

    fn param_groups(&self) -> &Groups {
        &self.groups
    }

    fn param_groups_mut(&mut self) -> &mut Groups {
        &mut self.groups
    }

    fn state_dict(&self) -> Vec<(String, Array)> {
        let mut out = Vec::new();
        for p in self.groups.iter().flat_map(|g| &g.params) {
            if let Some(b) = self.momentum.get(&p.name) {
                out.push((format!("{}.momentum_buffer", p.name), b.clone()));
            }
        }
        out
    }

    fn load_state_dict(&mut self, state: &HashMap<String, Array>) -> Result<()> {
        unexpected_keys(state, &self.groups, &SLOTS)?;
        let mut loaded = HashMap::new();
        for p in self.groups.iter().flat_map(|g| &g.params) {
            let key = format!("{}.momentum_buffer", p.name);
            if let Some(b) = state.get(&key) {
                loaded.insert(p.name.clone(), check_state(&key, b, p, true)?);
            }
        }
        self.momentum = loaded;
        Ok(())
    }

    fn state_bytes_of(&self, name: &str) -> usize {
        self.momentum.get(name).map_or(0, |b| bytes(&[b]))
    }
}

//! Adam and AdamW on the fused `Array::adamw` kernel (PyTorch's update rule, bias-corrected).

use super::{bytes, check_state, grad_of, unexpected_keys, Groups, Optimizer, ParamGroup};
use crate::module::NamedParam;
use plies_autodiff::{Array, DType, Device, Error, Result};
use plies_core::AdamWStep;
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// true: AdamW (decay applied to the weights, `p *= 1 - lr wd`); false: Adam (decay
    /// added to the gradient, `g += wd p`, as PyTorch's Adam).
    pub decoupled: bool,
}

impl AdamConfig {
    /// PyTorch's Adam defaults (betas 0.9/0.999, eps 1e-8, no weight decay).
    pub fn adam(lr: f64) -> AdamConfig {
        AdamConfig { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false }
    }

    /// AdamW with the given decoupled weight decay (PyTorch's default is 0.01).
    pub fn adamw(lr: f64, weight_decay: f64) -> AdamConfig {
        AdamConfig { weight_decay, decoupled: true, ..AdamConfig::adam(lr) }
    }
}

#[derive(Clone, Debug)]
struct State {
    m: Array,
    v: Array,
    step: u64,
}

/// Adam or AdamW (see [`AdamConfig::decoupled`]).
pub struct Adam {
    groups: Groups,
    pub config: AdamConfig,
    state: HashMap<String, State>,
}

const SLOTS: [&str; 3] = ["exp_avg", "exp_avg_sq", "step"];

impl Adam {
    pub fn new(params: Vec<NamedParam>, config: AdamConfig) -> Result<Adam> {
        Adam::with_groups(vec![ParamGroup::new(params)], config)
    }

    pub fn with_groups(groups: Vec<ParamGroup>, config: AdamConfig) -> Result<Adam> {
        let groups = Groups::new(groups, config.lr, config.weight_decay)?;
        Ok(Adam { groups, config, state: HashMap::new() })
    }

    /// The number of updates parameter `name` has received (0 before its first gradient).
    pub fn step_count(&self, name: &str) -> u64 {
        self.state.get(name).map_or(0, |s| s.step)
    }
}

impl Optimizer for Adam {
    fn step(&mut self) -> Result<()> {
        let c = self.config;
        for g in self.groups.iter() {
            for p in &g.params {
                let Some(grad) = grad_of(p) else { continue };
                let value = p.tensor.value();
                let st = match self.state.get_mut(&p.name) {
                    Some(s) => s,
                    None => {
                        let zeros = value.zeros_like()?;
                        self.state.entry(p.name.clone()).or_insert(State { m: zeros.clone(), v: zeros, step: 0 })
                    }
                };
                // The state follows a parameter moved to another device (Module::to_device).
                if st.m.device() != value.device() {
                    (st.m, st.v) = (st.m.to_device(value.device())?, st.v.to_device(value.device())?);
                }
                let (grad, wd) = match (c.decoupled, g.weight_decay) {
                    (false, wd) if wd != 0.0 => (grad.add(&value.mul_scalar(wd)?)?, 0.0),
                    (false, _) => (grad, 0.0),
                    (true, wd) => (grad, wd),
                };
                let hp = AdamWStep {
                    lr: g.lr,
                    beta1: c.beta1,
                    beta2: c.beta2,
                    eps: c.eps,
                    weight_decay: wd,
                    step: st.step + 1,
                };
                let (np, m, v) = value
                    .adamw(&grad, &st.m, &st.v, hp)
                    .map_err(|e| Error::invalid("adam", format!("updating `{}`: {e}", p.name)))?;
                p.tensor.set_value(np)?;
                *st = State { m, v, step: st.step + 1 };
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
            if let Some(s) = self.state.get(&p.name) {
                out.push((format!("{}.exp_avg", p.name), s.m.clone()));
                out.push((format!("{}.exp_avg_sq", p.name), s.v.clone()));
                // f64 holds every step count a run reaches exactly.
                let step = Array::scalar(s.step as f64, Device::Cpu).expect("a host scalar");
                out.push((format!("{}.step", p.name), step));
            }
        }
        out
    }

    fn load_state_dict(&mut self, state: &HashMap<String, Array>) -> Result<()> {
        unexpected_keys(state, &self.groups, &SLOTS)?;
        let mut loaded = HashMap::new();
        for p in self.groups.iter().flat_map(|g| &g.params) {
            let keys = SLOTS.map(|s| format!("{}.{s}", p.name));
            let found: Vec<Option<&Array>> = keys.iter().map(|k| state.get(k)).collect();
            match found.as_slice() {
                [None, None, None] => continue,
                [Some(m), Some(v), Some(step)] => {
                    let m = check_state(&keys[0], m, p, true)?;
                    let v = check_state(&keys[1], v, p, true)?;
                    let step = check_state(&keys[2], step, p, false)?.to_dtype(DType::F64)?.to_vec::<f64>()?[0];
                    // Past 2^53 an f64 no longer holds every integer: such a count is corrupt.
                    if !(step >= 1.0 && step.fract() == 0.0 && step <= (1u64 << 53) as f64) {
                        return Err(Error::invalid(
                            "optimizer load_state_dict",
                            format!("`{}` is {step}, not a positive step count", keys[2]),
                        ));
                    }
                    loaded.insert(p.name.clone(), State { m, v, step: step as u64 });
                }
                _ => {
                    let missing: Vec<&str> =
                        keys.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(k, _)| k.as_str()).collect();
                    return Err(Error::invalid(
                        "optimizer load_state_dict",
                        format!("incomplete state for `{}`: missing {}", p.name, missing.join(", ")),
                    ));
                }
            }
        }
        self.state = loaded;
        Ok(())
    }

    fn state_bytes_of(&self, name: &str) -> usize {
        self.state.get(name).map_or(0, |s| bytes(&[&s.m, &s.v]))
    }
}

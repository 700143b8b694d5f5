//! `Mola`: the handle over every Linear that got experts: the per-layer balance loss,
//! usage counts, redundancy, run-time scaling, disabling and detaching.

use super::config::MolaConfig;
use super::layer::MolaLayer;
use crate::lora::{find_targets, Base, InitLora, Restore};
use plies_autodiff::{Error, Result, Tensor};
use plies_nn::layers::{Linear, LinearAdapter};
use plies_nn::{Init, Module};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A target Linear as `Mola::new` will adapt it.
pub(crate) struct Planned {
    pub path: String,
    pub layer: usize,
    pub weight: Tensor,
    pub experts: usize,
    pub r: usize,
}

/// (layer index, experts) per adapted layer index, ascending.
pub(crate) type Allocation = Vec<(usize, usize)>;

/// The modules `config` adapts on `model` with their expert counts, and the (layer index,
/// experts) allocation, after every check that needs no change to the model.
pub(crate) fn plan(model: &dyn Module, config: &MolaConfig) -> Result<(Vec<Planned>, Allocation)> {
    config.validate()?;
    let targets = find_targets(model, &config.lora)?;
    let mut indices: Vec<usize> = targets.iter().map(|(_, _, l)| *l).collect();
    indices.sort_unstable();
    indices.dedup();
    let per_layer = config.experts_per_layer(indices.len())?;
    let allocation: Vec<(usize, usize)> = indices.iter().copied().zip(per_layer).collect();
    let experts_of: HashMap<usize, usize> = allocation.iter().copied().collect();
    let mut out = Vec::with_capacity(targets.len());
    for (path, base, layer) in targets {
        let Base::Linear { weight, .. } = base else {
            return Err(Error::invalid("mola", format!("`{path}` is an Embedding; MoLA adapts Linear layers only")));
        };
        let r = config.lora.for_module(&path)?.r;
        out.push(Planned { experts: experts_of[&layer], path, layer, weight, r });
    }
    Ok((out, allocation))
}

/// MoLA experts on a model's target Linears. The model keeps its layers; each adapted
/// Linear holds the same `MolaLayer` this handle lists.
pub struct Mola {
    layers: Vec<Arc<MolaLayer>>,
    config: MolaConfig,
    /// (layer index, experts) for each adapted layer index, ascending.
    allocation: Vec<(usize, usize)>,
}

impl Mola {
    /// Attach experts to `model`'s target Linears by `config` and freeze every base
    /// parameter. The adapted layer indices, in ascending order, take the allocation's
    /// counts (per layer or per group). Nothing changes on an error.
    pub fn new(model: &dyn Module, config: MolaConfig, init: &mut Init) -> Result<Mola> {
        let (plan, allocation) = plan(model, &config)?;
        let random = config.lora.init_lora_weights == InitLora::Random;
        let mut layers = Vec::with_capacity(plan.len());
        for p in &plan {
            let m = config.lora.for_module(&p.path)?;
            let (e, k, drop) = (p.experts, config.top_k, config.lora.lora_dropout);
            layers.push(Arc::new(MolaLayer::new(&p.path, p.layer, &p.weight, e, m, k, drop, random, init)?));
        }
        let by_path: HashMap<&str, &Arc<MolaLayer>> = layers.iter().map(|l| (l.path.as_str(), l)).collect();
        let mut taken = None;
        model.for_each_module(&mut |path, m| {
            if let (Some(_), Some(lin)) = (by_path.get(path), m.as_any().downcast_ref::<Linear>()) {
                if lin.adapter().is_some() && taken.is_none() {
                    taken = Some(path.to_string());
                }
            }
        });
        if let Some(p) = taken {
            return Err(Error::invalid("mola", format!("`{p}` already has an adapter attached")));
        }
        model.for_each_param(&mut |p| {
            p.tensor.set_requires_grad(false);
        });
        model.for_each_module(&mut |path, m| {
            if let (Some(l), Some(lin)) = (by_path.get(path), m.as_any().downcast_ref::<Linear>()) {
                lin.set_adapter(Some((*l).clone() as Arc<dyn LinearAdapter>));
            }
        });
        Ok(Mola { layers, config, allocation })
    }

    pub fn layers(&self) -> &[Arc<MolaLayer>] {
        &self.layers
    }

    pub fn layer(&self, path: &str) -> Option<&Arc<MolaLayer>> {
        self.layers.iter().find(|l| l.path == path)
    }

    pub fn config(&self) -> &MolaConfig {
        &self.config
    }

    /// (layer index, experts) of every adapted layer index, ascending.
    pub fn allocation(&self) -> &[(usize, usize)] {
        &self.allocation
    }

    /// The adapted modules of each layer index, in model order.
    fn by_layer(&self) -> BTreeMap<usize, Vec<&Arc<MolaLayer>>> {
        let mut m: BTreeMap<usize, Vec<&Arc<MolaLayer>>> = BTreeMap::new();
        for l in &self.layers {
            m.entry(l.layer).or_default().push(l);
        }
        m
    }

    /// Each layer's Switch-style balance loss from the last forward, `l_j = E_j sum_e f_e P_e`
    /// over the routing of all that layer's modules together: f_e the share of the k*N
    /// assignments expert e got, P_e its mean router probability. 1 under uniform routing;
    /// the gradient reaches the routers through P (f is a count). Layers that have not
    /// routed yet are left out.
    pub fn balance_losses(&self) -> Result<Vec<(usize, Tensor)>> {
        let mut out = Vec::new();
        for (layer, mods) in self.by_layer() {
            let routings: Vec<_> = mods.iter().filter_map(|m| m.last_routing()).collect();
            let Some(first) = routings.first() else { continue };
            let e = first.counts.len();
            let mut counts = vec![0usize; e];
            let mut rows = 0usize;
            for r in &routings {
                counts.iter_mut().zip(&r.counts).for_each(|(c, &x)| *c += x);
                rows += r.probs.dims()[0];
            }
            let assignments = (rows * first.top_k).max(1) as f64;
            let f: Vec<f64> = counts.iter().map(|&c| c as f64 / assignments).collect();
            // Made on the host in f64 and converted there, since not every device holds f64.
            let f = Tensor::try_from_vec(f, [e, 1], plies_autodiff::Device::Cpu)?
                .try_to_dtype(first.probs.dtype())?
                .try_to_device(first.probs.device())?;
            let mut total: Option<Tensor> = None;
            for r in &routings {
                let part = r.probs.try_matmul(&f)?.try_sum_all()?;
                total = Some(match total {
                    None => part,
                    Some(t) => t.try_add(&part)?,
                });
            }
            let total = total.expect("at least one routing");
            out.push((layer, total.try_mul_scalar(e as f64 / rows.max(1) as f64)?));
        }
        Ok(out)
    }

    /// `aux_loss_coef * sum_j l_j` from the last forward (None before any), the term MoLA
    /// adds to the training loss.
    pub fn aux_loss(&self) -> Result<Option<Tensor>> {
        let mut sum: Option<Tensor> = None;
        for (_, l) in self.balance_losses()? {
            sum = Some(match sum {
                None => l,
                Some(s) => s.try_add(&l)?,
            });
        }
        sum.map(|s| s.try_mul_scalar(self.config.aux_loss_coef)).transpose()
    }

    /// Each module's assignments per expert since the last reset: (path, counts).
    pub fn usage(&self) -> Vec<(String, Vec<u64>)> {
        self.layers.iter().map(|l| (l.path.clone(), l.usage())).collect()
    }

    pub fn reset_usage(&self) {
        self.layers.iter().for_each(|l| l.reset_usage());
    }

    /// Per layer index, the mean over its modules of the mean pairwise Frobenius distance
    /// between the experts' `(alpha/r) B A`.
    pub fn redundancy(&self) -> Result<Vec<(usize, f64)>> {
        let mut out = Vec::new();
        for (layer, mods) in self.by_layer() {
            let vals = mods.iter().map(|m| m.redundancy()).collect::<Result<Vec<_>>>()?;
            out.push((layer, vals.iter().sum::<f64>() / vals.len().max(1) as f64));
        }
        Ok(out)
    }

    /// A scope in which every adapted Linear computes its base output.
    pub fn disabled(&self) -> Restore<'_> {
        self.layers.iter().for_each(|l| l.set_disabled(true));
        let mut guard = Restore::new();
        guard.push(move || self.layers.iter().for_each(|l| l.set_disabled(false)));
        guard
    }

    /// Multiply the experts' scaling by `factor` on the modules `select` accepts (by path
    /// and layer index) until the guard drops, as IST's probes do with LoRA.
    pub fn scaled(&self, factor: f64, select: impl Fn(&str, usize) -> bool) -> Restore<'_> {
        let mut guard = Restore::new();
        for l in self.layers.iter().filter(|l| select(&l.path, l.layer)) {
            let s = l.scaling();
            l.set_scaling(s * factor);
            guard.push(move || l.set_scaling(s));
        }
        guard
    }

    /// Detach the experts from `model` (the base stays frozen); the handle is empty after.
    pub fn unload(&mut self, model: &dyn Module) {
        let paths: Vec<String> = self.layers.iter().map(|l| l.path.clone()).collect();
        model.for_each_module(&mut |path, m| {
            if let (true, Some(l)) = (paths.iter().any(|p| p == path), m.as_any().downcast_ref::<Linear>()) {
                l.set_adapter(None);
            }
        });
        self.layers.clear();
    }
}

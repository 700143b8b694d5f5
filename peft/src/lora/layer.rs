//! One adapted base layer: its named adapters (each LoRA or DoRA), the active one, and
//! merging them into the base weight.

use super::config::{InitLora, ModuleLora};
use super::dora;
use plies_autodiff::{Array, Error, Result, Tensor};
use plies_nn::layers::{split_output, Dropout, Embedding, EmbeddingAdapter, Linear, LinearAdapter};
use plies_nn::{Init, Initializer, Layer, Module, Scope};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Which kind of base layer, with shared handles to its parameters (merging writes them).
#[derive(Clone)]
pub enum Base {
    Linear { weight: Tensor, bias: Option<Tensor> },
    Embedding { weight: Tensor },
}

impl Base {
    pub fn weight(&self) -> &Tensor {
        match self {
            Base::Linear { weight, .. } | Base::Embedding { weight } => weight,
        }
    }

    /// `(rows of A's input, rows of B's output)`: (in, out) for a Linear, (num, dim) for an
    /// Embedding.
    fn dims(&self) -> (usize, usize) {
        let d = self.weight().dims();
        match self {
            Base::Linear { .. } => (d[1], d[0]),
            Base::Embedding { .. } => (d[0], d[1]),
        }
    }
}

/// One named adapter of one layer.
pub struct LoraUnit {
    pub r: usize,
    pub alpha: f64,
    /// Linear `[r, in]`; Embedding `[r, num_embeddings]`.
    pub a: Tensor,
    /// Linear `[out, r]`; Embedding `[dim, r]`.
    pub b: Tensor,
    /// DoRA's magnitude `[out]`, for a Linear adapter with `use_dora`.
    pub magnitude: Option<Tensor>,
    pub dropout: Dropout,
    /// The scaling the config gives (alpha/r or alpha/sqrt r).
    pub config_scaling: f64,
    /// The scaling in force, as f64 bits (changed at run time by IST's probes).
    scaling: AtomicU64,
}

impl LoraUnit {
    pub fn scaling(&self) -> f64 {
        f64::from_bits(self.scaling.load(Ordering::Relaxed))
    }

    fn set_scaling(&self, s: f64) {
        self.scaling.store(s.to_bits(), Ordering::Relaxed)
    }

    fn params(&self) -> impl Iterator<Item = &Tensor> {
        [&self.a, &self.b].into_iter().chain(self.magnitude.as_ref())
    }

    /// `s B A` as an `[out, in]` (Linear) or `[dim, num]` (Embedding) array, with `s` given.
    fn delta(&self, s: f64) -> Result<Array> {
        self.b.value().matmul(&self.a.value())?.mul_scalar(s)
    }
}

struct State {
    units: Vec<(String, Arc<LoraUnit>)>,
    active: Option<String>,
    disabled: bool,
    /// The merged adapter, the scaling it was merged with and DoRA's cached row norms.
    merged: Option<(String, f64, Option<Array>)>,
}

/// What the Lora handle attaches to a Linear or an Embedding.
pub struct LoraLayer {
    pub path: String,
    /// The layer index of the base layer's parameters.
    pub layer: usize,
    base: Base,
    state: RwLock<State>,
}

impl LoraLayer {
    pub(crate) fn new(path: &str, layer: usize, base: Base) -> LoraLayer {
        let state = State { units: Vec::new(), active: None, disabled: false, merged: None };
        LoraLayer { path: path.to_string(), layer, base, state: RwLock::new(state) }
    }

    pub fn base(&self) -> &Base {
        &self.base
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn adapter_names(&self) -> Vec<String> {
        self.read().units.iter().map(|(n, _)| n.clone()).collect()
    }

    pub fn unit(&self, name: &str) -> Option<Arc<LoraUnit>> {
        self.read().units.iter().find(|(n, _)| n == name).map(|(_, u)| u.clone())
    }

    /// The active adapter of this layer, if it has one.
    pub fn active(&self) -> Option<Arc<LoraUnit>> {
        let st = self.read();
        let name = st.active.as_ref()?;
        st.units.iter().find(|(n, _)| n == name).map(|(_, u)| u.clone())
    }

    pub fn active_name(&self) -> Option<String> {
        self.read().active.clone()
    }

    pub fn merged_name(&self) -> Option<String> {
        self.read().merged.as_ref().map(|(n, _, _)| n.clone())
    }

    /// Create adapter `name` with the module's rank and alpha, drawing A and B from `init`
    /// in the base weight's dtype and device.
    pub(crate) fn add(&self, name: &str, m: ModuleLora, cfg: (f64, bool, InitLora), init: &mut Init) -> Result<()> {
        let (dropout, use_dora, how) = cfg;
        if self.unit(name).is_some() {
            return Err(Error::invalid("lora", format!("`{}` already has an adapter named `{name}`", self.path)));
        }
        let w = self.base.weight();
        let mut init = Init { rng: init.fork_rng(), dtype: w.dtype(), device: w.device() };
        let (n_in, n_out) = self.base.dims();
        let r = m.r;
        let embedding = matches!(self.base, Base::Embedding { .. });
        let kaiming = Initializer::torch_default();
        let (ia, ib) = match (how, embedding) {
            (InitLora::Random, _) => (kaiming, kaiming),
            (_, true) => (Initializer::ZEROS, Initializer::Normal { mean: 0.0, std: 1.0 }),
            (InitLora::Default, false) => (kaiming, Initializer::ZEROS),
            (InitLora::Gaussian, false) => (Initializer::Normal { mean: 0.0, std: 1.0 / r as f64 }, Initializer::ZEROS),
        };
        let a = init.try_param([r, n_in], ia)?;
        let b = init.try_param([n_out, r], ib)?;
        let magnitude = if use_dora {
            if embedding {
                return Err(Error::invalid("lora", format!("`{}`: DoRA on an Embedding is not supported", self.path)));
            }
            let delta = b.value().matmul(&a.value())?.mul_scalar(m.scaling)?;
            Some(Tensor::param(dora::row_norms(&w.value().add(&delta)?)?))
        } else {
            None
        };
        let unit = LoraUnit {
            r,
            alpha: m.alpha,
            a,
            b,
            magnitude,
            dropout: Dropout::new(&mut init, dropout),
            config_scaling: m.scaling,
            scaling: AtomicU64::new(m.scaling.to_bits()),
        };
        let mut st = self.write();
        st.units.push((name.to_string(), Arc::new(unit)));
        let active = st.active.clone();
        drop(st);
        self.set_active(active.as_deref());
        Ok(())
    }

    /// Make `name` active (or none): its parameters train and are the ones visited; the
    /// others are frozen, as PEFT's `set_adapter` does. A unit moves to the base weight's
    /// device on becoming active, since only the visited one followed `to_device`. This
    /// layer only; `Lora::set_adapter` switches every layer.
    pub fn set_active(&self, name: Option<&str>) {
        let device = self.base.weight().device();
        let mut st = self.write();
        st.active = name.filter(|n| st.units.iter().any(|(u, _)| u == n)).map(str::to_string);
        for (n, u) in &st.units {
            let on = Some(n) == st.active.as_ref();
            for p in u.params() {
                p.set_requires_grad(on);
                if on && p.device() != device {
                    if let Ok(v) = p.value().to_device(device) {
                        let _ = p.set_value(v);
                        p.zero_grad();
                    }
                }
            }
        }
    }

    pub(crate) fn set_disabled(&self, on: bool) {
        self.write().disabled = on;
    }

    pub(crate) fn delete(&self, name: &str) -> Result<bool> {
        let mut st = self.write();
        if st.merged.as_ref().is_some_and(|(n, _, _)| n == name) {
            return Err(Error::invalid("lora", format!("`{}`: adapter `{name}` is merged; unmerge first", self.path)));
        }
        let before = st.units.len();
        st.units.retain(|(n, _)| n != name);
        if st.active.as_deref() == Some(name) {
            st.active = None;
        }
        Ok(st.units.len() != before)
    }

    /// The active adapter's scaling (None without an active adapter).
    pub fn scaling(&self) -> Option<f64> {
        self.active().map(|u| u.scaling())
    }

    /// Set the active adapter's scaling; takes effect at the next forward (not while merged).
    pub fn set_scaling(&self, s: f64) -> Result<()> {
        let u = self.active().ok_or_else(|| self.no_active("set_scaling"))?;
        u.set_scaling(s);
        Ok(())
    }

    /// Back to the scaling the config gave.
    pub fn reset_scaling(&self) {
        if let Some(u) = self.active() {
            u.set_scaling(u.config_scaling);
        }
    }

    fn no_active(&self, op: &str) -> Error {
        Error::invalid("lora", format!("{op}: `{}` has no active adapter", self.path))
    }

    /// Fold the active adapter into the base weight (W + s B A; DoRA: m / ||W + s B A|| times
    /// that), caching what unmerging needs.
    pub(crate) fn merge(&self) -> Result<()> {
        let u = self.active().ok_or_else(|| self.no_active("merge"))?;
        let mut st = self.write();
        if let Some((n, _, _)) = &st.merged {
            return Err(Error::invalid("lora", format!("`{}` already has `{n}` merged", self.path)));
        }
        let s = u.scaling();
        let w = self.base.weight();
        let delta = u.delta(s)?;
        let (new, norms) = match (&self.base, &u.magnitude) {
            (Base::Embedding { .. }, _) => (w.value().add(&delta.t()?)?, None),
            (Base::Linear { .. }, None) => (w.value().add(&delta)?, None),
            (Base::Linear { .. }, Some(m)) => {
                let sum = w.value().add(&delta)?;
                let norms = dora::row_norms(&sum)?;
                let factor = m.value().div(&norms)?.unsqueeze(1)?;
                (sum.mul(&factor)?, Some(norms))
            }
        };
        w.set_value(new.contiguous()?)?;
        st.merged = Some((st.active.clone().unwrap_or_default(), s, norms));
        Ok(())
    }

    /// Undo `merge`: the base weight returns to its value before, within rounding.
    pub(crate) fn unmerge(&self) -> Result<()> {
        let mut st = self.write();
        let Some((name, s, norms)) = st.merged.take() else {
            return Ok(());
        };
        let u = st.units.iter().find(|(n, _)| *n == name).map(|(_, u)| u.clone());
        let Some(u) = u else {
            st.merged = Some((name.clone(), s, norms));
            return Err(Error::invalid("lora", format!("`{}`: merged adapter `{name}` is gone", self.path)));
        };
        let w = self.base.weight();
        let delta = u.delta(s)?;
        let old = match (&self.base, &u.magnitude, &norms) {
            (Base::Embedding { .. }, _, _) => w.value().sub(&delta.t()?)?,
            (Base::Linear { .. }, Some(m), Some(norms)) => {
                let factor = m.value().div(norms)?.unsqueeze(1)?;
                w.value().div(&factor)?.sub(&delta)?
            }
            _ => w.value().sub(&delta)?,
        };
        w.set_value(old.contiguous()?)
    }

    /// Whether forward passes the base output through unchanged.
    fn passthrough(&self) -> bool {
        let st = self.read();
        st.disabled || st.merged.is_some() || st.active.is_none()
    }

    fn visit_units(&self, s: &mut Scope<'_>) {
        let embedding = matches!(self.base, Base::Embedding { .. });
        let st = self.read();
        for (name, u) in &st.units {
            // Every unit's dropout follows train/eval; only the active one's parameters are
            // the model's (PEFT's saved names carry no adapter name).
            u.dropout.visit(s);
            if Some(name) != st.active.as_ref() {
                continue;
            }
            if embedding {
                s.param("lora_embedding_A", &u.a);
                s.param("lora_embedding_B", &u.b);
            } else {
                s.param("lora_A.weight", &u.a);
                s.param("lora_B.weight", &u.b);
                if let Some(m) = &u.magnitude {
                    s.param("lora_magnitude_vector", m);
                }
            }
        }
    }

    /// The parameters of adapter `name` under the keys of PEFT's file (without the
    /// `base_model.model.` prefix and this layer's path).
    pub fn unit_tensors(&self, name: &str) -> Vec<(&'static str, Tensor)> {
        let Some(u) = self.unit(name) else {
            return Vec::new();
        };
        match self.base {
            Base::Embedding { .. } => vec![("lora_embedding_A", u.a.clone()), ("lora_embedding_B", u.b.clone())],
            Base::Linear { .. } => {
                let mut v = vec![("lora_A.weight", u.a.clone()), ("lora_B.weight", u.b.clone())];
                if let Some(m) = &u.magnitude {
                    v.push(("lora_magnitude_vector", m.clone()));
                }
                v
            }
        }
    }
}

impl Module for LoraLayer {
    fn visit(&self, s: &mut Scope<'_>) {
        self.visit_units(s);
    }
}

impl LinearAdapter for LoraLayer {
    fn try_forward(&self, layer: &Linear, x: &Tensor) -> Result<Tensor> {
        let Some(u) = self.active().filter(|_| !self.passthrough()) else {
            return layer.try_base(x, true);
        };
        let s = u.scaling();
        let xd = u.dropout.try_forward(x)?;
        let after_a = xd.try_matmul(&u.a.try_t()?)?;
        match &u.magnitude {
            // The scaling goes on the narrow [n, r] product, not on the [n, out] output.
            None => layer.try_base(x, true)?.try_add(&after_a.try_mul_scalar(s)?.try_matmul(&u.b.try_t()?)?),
            Some(m) => {
                let lora = after_a.try_matmul(&u.b.try_t()?)?;
                dora::forward(layer, x, &xd, u.dropout.is_active(), &lora, m, &u.a, &u.b, s)
            }
        }
    }

    /// Plain LoRA splits its product as the base does: part i is the base's own slice plus
    /// `(x A^T) (s_i s B_i)^T` with B's rows sliced, so backward pads only B-sized gradients
    /// with zeros, never the [n, out] output's. DoRA needs the full weight norm and slices
    /// the full output.
    fn try_forward_split(&self, layer: &Linear, x: &Tensor, sizes: &[usize], scales: &[f64]) -> Result<Vec<Tensor>> {
        let Some(u) = self.active().filter(|_| !self.passthrough()) else {
            return layer.try_base_split(x, sizes, scales);
        };
        if u.magnitude.is_some() {
            return split_output(&LinearAdapter::try_forward(self, layer, x)?, sizes, scales);
        }
        let after_a = u.dropout.try_forward(x)?.try_matmul(&u.a.try_t()?)?;
        let base = layer.try_base_split(x, sizes, scales)?;
        let mut start = 0;
        let mut out = Vec::with_capacity(base.len());
        for ((y, &n), &si) in base.into_iter().zip(sizes).zip(scales) {
            let b = u.b.try_narrow(0, start, n)?.try_mul_scalar(si * u.scaling())?;
            out.push(y.try_add(&after_a.try_matmul(&b.try_t()?)?)?);
            start += n;
        }
        Ok(out)
    }

    fn is_passthrough(&self) -> bool {
        self.passthrough()
    }
}

impl EmbeddingAdapter for LoraLayer {
    /// PEFT's LoRA embedding: base rows + s (A^T rows) B^T (no dropout on ids).
    fn try_forward(&self, layer: &Embedding, ids: &Tensor) -> Result<Tensor> {
        let base = layer.try_base(ids)?;
        let Some(u) = self.active().filter(|_| !self.passthrough()) else {
            return Ok(base);
        };
        let after_a = u.a.try_t()?.try_embedding(ids)?;
        let r = u.r;
        let rows = after_a.try_reshape([after_a.elem_count() / r.max(1), r])?;
        let delta = rows.try_matmul(&u.b.try_t()?)?.try_mul_scalar(u.scaling())?;
        base.try_add(&delta.try_reshape(base.dims())?)
    }

    fn is_passthrough(&self) -> bool {
        self.passthrough()
    }
}

//! `MemoryReport`: what a training step holds, per layer.
//!
//! ```ignore
//! let loss = model.try_forward(&x)?.try_cross_entropy(&y)?;
//! let report = MemoryReport::measure(&model, Some(&opt), &loss)?; // before backward
//! loss.backward()?;
//! run.memory(step, &report)?;      // per-step totals into metrics.jsonl
//! eprintln!("{}", report.table()); // Run::finish prints the last one
//! let t = report.totals();         // t.param_bytes, t.saved_bytes, t.peak_bytes, ...
//! ```
//!
//! Per layer (the indices `Module::visit` assigns), in bytes:
//! - `param_bytes`: the parameters' storages (a shared parameter counts once).
//! - `grad_bytes`: the gradients the step holds: those already stored, plus, for every
//!   parameter backward from `loss` will reach, the gradient it will store (its own size).
//!   Frozen parameters and parameters the loss does not depend on hold none.
//! - `optimizer_bytes`: the optimizer's state for the layer's parameters (lazy: 0 before a
//!   parameter's first step).
//! - `saved_bytes`: activations the graph below `loss` keeps for backward, each storage
//!   once, attributed to the layer whose forward recorded the first node holding it (the
//!   containers open `plies_autodiff::layer_scope` around each layer; ops outside every
//!   scope, such as a loss computed after the model, are counted in `outside_saved_bytes`).
//!   Parameters are not activations: their storages are left out here.
//!
//! Measure after the forward pass and before `backward` (which frees the graph). The
//! backend's `live` and `peak` bytes come from `Backend::memory()` of the loss's device, so
//! the GPU pool is counted too; `peak` is the most the backend held since the process
//! started, which in a steady training loop is the peak of a step.

use crate::module::Module;
use crate::optim::Optimizer;
use crate::train::Value;
use plies_autodiff::memory::{held_storages, storage_key};
use plies_autodiff::{Result, Tensor};
use std::collections::HashSet;

/// What one layer holds, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerMemory {
    pub layer: usize,
    pub param_bytes: u64,
    pub grad_bytes: u64,
    pub optimizer_bytes: u64,
    pub saved_bytes: u64,
}

impl LayerMemory {
    pub fn total(&self) -> u64 {
        self.param_bytes + self.grad_bytes + self.optimizer_bytes + self.saved_bytes
    }
}

/// Sums over the layers, plus what no layer owns and the backend's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryTotals {
    pub param_bytes: u64,
    pub grad_bytes: u64,
    pub optimizer_bytes: u64,
    /// Saved activations of all layers and outside them.
    pub saved_bytes: u64,
    /// Bytes in storages the backend holds now.
    pub live_bytes: u64,
    /// The most bytes the backend held at once (see the module doc).
    pub peak_bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    /// One entry per layer index, in order.
    pub layers: Vec<LayerMemory>,
    /// Saved activations recorded outside every layer scope (e.g. the loss's).
    pub outside_saved_bytes: u64,
    pub live_bytes: u64,
    pub peak_bytes: u64,
    /// The backend measured (its device).
    pub device: String,
}

impl MemoryReport {
    /// Measure `model` (with `opt`'s state if given) and the graph below `loss`.
    pub fn measure(model: &dyn Module, opt: Option<&dyn Optimizer>, loss: &Tensor) -> Result<MemoryReport> {
        let mut layers: Vec<LayerMemory> =
            (0..model.num_layers()).map(|layer| LayerMemory { layer, ..Default::default() }).collect();
        fn at(layers: &mut Vec<LayerMemory>, layer: usize) -> &mut LayerMemory {
            while layers.len() <= layer {
                let next = layers.len();
                layers.push(LayerMemory { layer: next, ..Default::default() });
            }
            &mut layers[layer]
        }
        let (held, leaves) = held_storages(loss);
        let reached: HashSet<usize> = leaves.iter().map(|t| t.id()).collect();
        let mut params = HashSet::new();
        model.for_each_param(&mut |p| {
            let v = p.tensor.value();
            if !params.insert(storage_key(&v)) {
                return;
            }
            let l = at(&mut layers, p.layer);
            l.param_bytes += v.storage_bytes() as u64;
            l.grad_bytes += match p.tensor.grad() {
                Some(g) => g.storage_bytes() as u64,
                None if p.tensor.requires_grad() && reached.contains(&p.tensor.id()) => {
                    (v.elem_count() * v.dtype().size_in_bytes()) as u64
                }
                None => 0,
            };
            if let Some(o) = opt {
                l.optimizer_bytes += o.state_bytes_of(p.name) as u64;
            }
        });
        let mut outside_saved_bytes = 0;
        for h in held.iter().filter(|h| !params.contains(&h.key)) {
            match h.layer {
                Some(layer) => at(&mut layers, layer).saved_bytes += h.bytes as u64,
                None => outside_saved_bytes += h.bytes as u64,
            }
        }
        let backend = loss.value().backend();
        let stats = backend.memory();
        Ok(MemoryReport {
            layers,
            outside_saved_bytes,
            live_bytes: stats.live,
            peak_bytes: stats.peak,
            device: backend.device().to_string(),
        })
    }

    pub fn totals(&self) -> MemoryTotals {
        let sum = |f: fn(&LayerMemory) -> u64| self.layers.iter().map(f).sum::<u64>();
        MemoryTotals {
            param_bytes: sum(|l| l.param_bytes),
            grad_bytes: sum(|l| l.grad_bytes),
            optimizer_bytes: sum(|l| l.optimizer_bytes),
            saved_bytes: sum(|l| l.saved_bytes) + self.outside_saved_bytes,
            live_bytes: self.live_bytes,
            peak_bytes: self.peak_bytes,
        }
    }

    /// The totals as metrics fields (`param_bytes`, ..., `peak_bytes`).
    pub fn fields(&self) -> Vec<(&'static str, Value)> {
        let t = self.totals();
        vec![
            ("param_bytes", t.param_bytes.into()),
            ("grad_bytes", t.grad_bytes.into()),
            ("optimizer_bytes", t.optimizer_bytes.into()),
            ("saved_bytes", t.saved_bytes.into()),
            ("live_bytes", t.live_bytes.into()),
            ("peak_bytes", t.peak_bytes.into()),
        ]
    }

    /// A table: one row per layer, a row for activations outside the layers, the totals,
    /// and the backend's live and peak bytes.
    pub fn table(&self) -> String {
        let head = ["layer", "params", "grads", "optimizer", "saved act.", "total"];
        let mut rows: Vec<[String; 6]> = vec![head.map(String::from)];
        let row =
            |name: String, p: u64, g: u64, o: u64, s: u64| [name, kib(p), kib(g), kib(o), kib(s), kib(p + g + o + s)];
        for l in &self.layers {
            rows.push(row(l.layer.to_string(), l.param_bytes, l.grad_bytes, l.optimizer_bytes, l.saved_bytes));
        }
        if self.outside_saved_bytes > 0 {
            rows.push(row("outside".into(), 0, 0, 0, self.outside_saved_bytes));
        }
        let t = self.totals();
        rows.push(row("total".into(), t.param_bytes, t.grad_bytes, t.optimizer_bytes, t.saved_bytes));
        let widths: Vec<usize> = (0..6).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
        let mut out = String::from("memory per layer (KiB)\n");
        for r in &rows {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(c, (v, &w))| if c == 0 { format!("{v:<w$}") } else { format!("{v:>w$}") })
                .collect();
            out += cells.join("  ").trim_end();
            out.push('\n');
        }
        out += &format!("backend {}: live {} KiB, peak {} KiB\n", self.device, kib(t.live_bytes), kib(t.peak_bytes));
        out
    }
}

fn kib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1024.0)
}

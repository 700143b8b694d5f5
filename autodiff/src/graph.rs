//! The recorded graph and reverse-mode backward.
//!
//! An op records a node only when gradients are enabled and one of its inputs requires a
//! gradient, so frozen parameters and `no_grad` code build no graph at all. A node holds
//! its inputs and a backward rule: a closure that owns whatever the op saved.
//!
//! CONTRACT for every rule: given `grad` (d loss / d output, in the output's shape) and
//! which inputs need a gradient, return one entry per input: `Some(d loss / d input)` for
//! those that need one (already multiplied by `grad`), `None` otherwise. A rule may return
//! a gradient in the broadcast output shape; `backward` sums it down to the input's shape
//! in one place. Rules compute with `Array` ops, so every backend gets gradients for free.

use crate::anomaly::{self, is_anomaly_enabled};
use crate::tensor::Tensor;
use plies_core::{Array, Error, Result, Shape};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub(crate) type Rule = Box<dyn FnOnce(&Array, &[bool]) -> Result<Vec<Option<Array>>> + Send + Sync>;

pub(crate) struct Node {
    pub(crate) name: &'static str,
    /// Layer and saved storages, for the memory accounting (memory.rs).
    pub(crate) mem: crate::memory::NodeMem,
    /// Taken (and so freed, with everything the rule saved) when backward runs.
    pub(crate) body: Mutex<Option<(Vec<Tensor>, Rule)>>,
}

/// Nodes alive in this process, so tests can check that no graph outlives a training step.
static LIVE_NODES: AtomicUsize = AtomicUsize::new(0);

/// How many graph nodes exist now (created by an op, not yet dropped), on all threads.
pub fn live_nodes() -> usize {
    LIVE_NODES.load(Ordering::Relaxed)
}

impl Drop for Node {
    fn drop(&mut self) {
        LIVE_NODES.fetch_sub(1, Ordering::Relaxed);
    }
}

thread_local! {
    static NO_GRAD_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// While alive, ops record no graph on this thread.
pub struct NoGradGuard(());

impl NoGradGuard {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        NO_GRAD_DEPTH.with(|d| d.set(d.get() + 1));
        NoGradGuard(())
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        NO_GRAD_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Run `f` without recording a graph (`torch.no_grad()`).
///
/// ```
/// use plies_autodiff::{no_grad, Device, Tensor};
///
/// let w = Tensor::ones([2], plies_autodiff::DType::F32, Device::Cpu);
/// w.set_requires_grad(true);
/// let y = no_grad(|| w.try_exp()).unwrap();
/// assert!(!y.requires_grad() && !y.has_graph());
/// ```
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _g = NoGradGuard::new();
    f()
}

pub fn is_grad_enabled() -> bool {
    NO_GRAD_DEPTH.with(|d| d.get() == 0)
}

impl Tensor {
    /// The result of an op: records a node when an input needs a gradient. Every op that
    /// computes a tensor passes through here, so this is where anomaly detection checks the
    /// forward pass.
    pub(crate) fn record(
        name: &'static str,
        value: Array,
        inputs: &[&Tensor],
        rule: impl FnOnce(&Array, &[bool]) -> Result<Vec<Option<Array>>> + Send + Sync + 'static,
    ) -> Result<Tensor> {
        if is_anomaly_enabled() {
            anomaly::check_forward(name, &value, inputs)?;
        }
        if !is_grad_enabled() || !inputs.iter().any(|t| t.requires_grad()) {
            return Ok(Tensor::new(value));
        }
        let inputs = inputs.iter().map(|t| (*t).clone()).collect();
        let node = Node { name, mem: crate::memory::NodeMem::here(), body: Mutex::new(Some((inputs, Box::new(rule)))) };
        LIVE_NODES.fetch_add(1, Ordering::Relaxed);
        Ok(Tensor::build(value, true, Some(node)))
    }

    /// Whether this tensor took part in an op that recorded a node.
    pub fn has_graph(&self) -> bool {
        self.0.node.is_some()
    }

    /// The leaves requiring a gradient that this tensor's graph reaches (each once, inputs
    /// first): the trainable tensors a backward pass from here would fill.
    pub fn graph_leaves(&self) -> Vec<Tensor> {
        topo_order(self).into_iter().filter(|t| t.is_leaf() && t.requires_grad()).collect()
    }

    /// Backpropagate from a one-element tensor (d self / d self = 1). Gradients add up in
    /// `.grad()` across calls, as in PyTorch, until `zero_grad`.
    ///
    /// ```
    /// use plies_autodiff::{Device, Tensor};
    ///
    /// let x = Tensor::from_vec(vec![3.0f64], [1], Device::Cpu);
    /// x.set_requires_grad(true);
    /// let y = x.try_mul(&x)?.try_sum_all()?; // x^2
    /// y.backward()?;
    /// assert_eq!(x.grad().unwrap().to_vec::<f64>()?, vec![6.0]);
    /// # Ok::<(), plies_autodiff::Error>(())
    /// ```
    pub fn backward(&self) -> Result<()> {
        if self.elem_count() != 1 {
            return Err(Error::NoGradient {
                op: "backward",
                msg: format!("needs a one-element tensor, got shape {}; use backward_with", self.shape()),
            });
        }
        let one = self.value().ones_like()?;
        self.backward_with(one)
    }

    /// Backpropagate with an explicit upstream gradient of this tensor's shape.
    pub fn backward_with(&self, grad: Array) -> Result<()> {
        if !self.requires_grad() {
            return Err(Error::NoGradient {
                op: "backward",
                msg: "the tensor does not require a gradient (nothing it depends on requires one)".into(),
            });
        }
        if grad.shape() != &self.shape() {
            return Err(Error::ShapeMismatch { op: "backward", lhs: self.shape(), rhs: grad.shape().clone() });
        }
        if grad.dtype() != self.dtype() {
            return Err(Error::DTypeMismatch { op: "backward", lhs: self.dtype(), rhs: grad.dtype() });
        }
        if grad.device() != self.device() {
            return Err(Error::DeviceMismatch { op: "backward", lhs: self.device(), rhs: grad.device() });
        }
        let order = topo_order(self);
        let mut grads: HashMap<usize, Array> = HashMap::new();
        grads.insert(self.id(), grad);
        for t in order.iter().rev() {
            let Some(g) = grads.remove(&t.id()) else { continue };
            if t.retains_grad() {
                t.accumulate_grad(g.clone())?;
            }
            let Some(node) = &t.0.node else { continue };
            let Some((inputs, rule)) = node.body.lock().unwrap().take() else {
                return Err(Error::NoGradient {
                    op: node.name,
                    msg: "backward through this part of the graph a second time (its saved values were freed)".into(),
                });
            };
            let needs: Vec<bool> = inputs.iter().map(|i| i.requires_grad()).collect();
            let out = rule(&g, &needs)?;
            // Anomaly checks compare with the upstream gradient; otherwise free it early.
            let upstream = is_anomaly_enabled().then_some(g);
            for (index, ((input, need), ig)) in inputs.iter().zip(needs).zip(out).enumerate() {
                let (true, Some(ig)) = (need, ig) else { continue };
                let ig = sum_to_shape(ig, &input.shape(), node.name)?;
                if let Some(up) = &upstream {
                    anomaly::check_backward(node.name, &inputs, index, &ig, up)?;
                }
                let slot = grads.remove(&input.id());
                grads.insert(
                    input.id(),
                    match slot {
                        Some(prev) => {
                            let sum = prev.add(&ig)?;
                            if upstream.is_some() {
                                anomaly::check_accumulated(node.name, &inputs, index, &sum, [&prev, &ig])?;
                            }
                            sum
                        }
                        None => ig,
                    },
                );
            }
        }
        Ok(())
    }
}

/// Tensors reachable from `root` through nodes, in topological order (inputs first).
pub(crate) fn topo_order(root: &Tensor) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    // Iterative DFS: (tensor, children pushed yet?)
    let mut stack = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !seen.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        if let Some(node) = &t.0.node {
            if let Some((inputs, _)) = node.body.lock().unwrap().as_ref() {
                for i in inputs {
                    if i.requires_grad() && !seen.contains(&i.id()) {
                        stack.push((i.clone(), false));
                    }
                }
            }
        }
    }
    order
}

/// Sum a gradient computed in a broadcast shape back down to the input's shape.
pub(crate) fn sum_to_shape(g: Array, shape: &Shape, op: &'static str) -> Result<Array> {
    if g.shape() == shape {
        return Ok(g);
    }
    let (gr, r) = (g.rank(), shape.rank());
    if gr < r {
        return Err(Error::ShapeMismatch { op, lhs: g.shape().clone(), rhs: shape.clone() });
    }
    let extra = gr - r;
    let mut axes: Vec<usize> = (0..extra).collect();
    for (i, &d) in shape.dims().iter().enumerate() {
        let gd = g.dims()[extra + i];
        if d == 1 && gd != 1 {
            axes.push(extra + i);
        } else if d != gd {
            return Err(Error::ShapeMismatch { op, lhs: g.shape().clone(), rhs: shape.clone() });
        }
    }
    g.sum(axes, true)?.reshape(shape.clone())
}

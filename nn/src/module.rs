//! The `Module` trait. A module implements one method, [`Module::visit`], which reports its
//! own parameters, its train/eval flags and its children to a [`Scope`]; everything else
//! (named parameters, counts per layer, freezing by name or layer, train/eval, zeroing
//! gradients, byte counts, state dicts) is built on that traversal, as in burn.
//!
//! Names are PyTorch-style dotted paths (`blocks.3.attn.qkv.weight`), so a PyTorch module
//! with the same attribute names loads a Plies checkpoint. Every parameter also carries a
//! layer index, assigned by the outermost container that assigns one (a `Sequential` gives
//! its i-th child layer i, the GPT gives embeddings 0, block i layer i + 1 and the final
//! norm and head L + 1); parameters no container places are in layer 0.

use crate::stats::LayerStats;
use plies_autodiff::rng::Rng;
use plies_autodiff::{Array, Device, Error, Result, Tensor};
use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// One parameter as a traversal sees it.
pub struct ParamRef<'a> {
    pub name: &'a str,
    pub layer: usize,
    pub tensor: &'a Tensor,
}

/// A parameter with its full name and layer index. The tensor is a shared handle: freezing
/// it or assigning its value acts on the module's parameter.
#[derive(Clone, Debug)]
pub struct NamedParam {
    pub name: String,
    pub layer: usize,
    pub tensor: Tensor,
}

/// What a traversal does at each item; only `param` is required.
pub trait Visit {
    fn param(&mut self, p: ParamRef<'_>);
    /// Called on entering each child module, with its full path.
    fn module(&mut self, _path: &str, _m: &dyn Module) {}
    /// Called for each train/eval flag.
    fn mode(&mut self, _flag: &Mode) {}
    /// Called for each random generator a module draws from (e.g. dropout's), with its full
    /// name, so that a training state can save and restore it.
    fn rng(&mut self, _name: &str, _rng: &Mutex<Rng>) {}
}

/// Where a traversal is: the dotted path so far and the layer index in force.
pub struct Scope<'v> {
    path: String,
    layer: Option<usize>,
    visit: &'v mut dyn Visit,
}

impl<'v> Scope<'v> {
    pub fn new(visit: &'v mut dyn Visit) -> Self {
        Scope { path: String::new(), layer: None, visit }
    }

    /// A scope whose names start with `prefix` (e.g. to visit one block as `blocks.3`).
    pub fn with_prefix(visit: &'v mut dyn Visit, prefix: &str, layer: Option<usize>) -> Self {
        Scope { path: prefix.to_string(), layer, visit }
    }

    fn full(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// Report a parameter of the current module.
    pub fn param(&mut self, name: &str, tensor: &Tensor) {
        let full = self.full(name);
        self.visit.param(ParamRef { name: &full, layer: self.layer.unwrap_or(0), tensor });
    }

    /// Report a train/eval flag of the current module.
    pub fn mode(&mut self, flag: &Mode) {
        self.visit.mode(flag);
    }

    /// Report a random generator of the current module.
    pub fn rng(&mut self, name: &str, rng: &Mutex<Rng>) {
        let full = self.full(name);
        self.visit.rng(&full, rng);
    }

    /// Visit a child module under `name`.
    pub fn child(&mut self, name: &str, m: &dyn Module) {
        self.enter(name, None, m);
    }

    /// Visit a child module under `name` that forms layer `index`, unless an enclosing
    /// container already placed this subtree in a layer.
    pub fn layer(&mut self, name: &str, index: usize, m: &dyn Module) {
        self.enter(name, Some(index), m);
    }

    fn enter(&mut self, name: &str, layer: Option<usize>, m: &dyn Module) {
        let (len, saved) = (self.path.len(), self.layer);
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(name);
        if self.layer.is_none() {
            self.layer = layer;
        }
        self.visit.module(&self.path, m);
        m.visit(self);
        self.path.truncate(len);
        self.layer = saved;
    }
}

/// A module's train/eval flag (training by default, as in PyTorch). Shared through `&self`
/// so that `train`/`eval` work on a model held behind shared references.
#[derive(Debug)]
pub struct Mode(AtomicBool);

impl Default for Mode {
    fn default() -> Self {
        Mode(AtomicBool::new(true))
    }
}

impl Clone for Mode {
    fn clone(&self) -> Self {
        Mode(AtomicBool::new(self.is_training()))
    }
}

impl Mode {
    pub fn is_training(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    pub fn set(&self, training: bool) {
        self.0.store(training, Ordering::Relaxed)
    }
}

/// Lets a `&dyn Module` be downcast to its concrete type (e.g. to find every `Linear`).
pub trait AsAny {
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Adapts a closure over parameters into a `Visit`.
struct Params<F: FnMut(ParamRef<'_>)>(F);

impl<F: FnMut(ParamRef<'_>)> Visit for Params<F> {
    fn param(&mut self, p: ParamRef<'_>) {
        (self.0)(p)
    }
}

struct Modes<F: FnMut(&Mode)>(F);

impl<F: FnMut(&Mode)> Visit for Modes<F> {
    fn param(&mut self, _: ParamRef<'_>) {}
    fn mode(&mut self, flag: &Mode) {
        (self.0)(flag)
    }
}

struct Rngs<F: FnMut(&str, &Mutex<Rng>)>(F);

impl<F: FnMut(&str, &Mutex<Rng>)> Visit for Rngs<F> {
    fn param(&mut self, _: ParamRef<'_>) {}
    fn rng(&mut self, name: &str, rng: &Mutex<Rng>) {
        (self.0)(name, rng)
    }
}

struct Modules<F: FnMut(&str, &dyn Module)>(F);

impl<F: FnMut(&str, &dyn Module)> Visit for Modules<F> {
    fn param(&mut self, _: ParamRef<'_>) {}
    fn module(&mut self, path: &str, m: &dyn Module) {
        (self.0)(path, m)
    }
}

/// A model or a part of one. `#[derive(Module)]` writes `visit` from the fields: tensors are
/// parameters, modules are children, a `Vec` of modules is numbered.
///
/// ```
/// use plies_nn::prelude::*;
///
/// #[derive(Module)]
/// struct Pair {
///     scale: Tensor,
///     #[module(layers_from = 0)]
///     layers: Vec<Linear>,
/// }
///
/// let mut init = Init::new(0);
/// let scale = Tensor::ones([3], DType::F32, Device::Cpu);
/// scale.set_requires_grad(true);
/// let m = Pair { scale, layers: vec![Linear::new(&mut init, 3, 3, true), Linear::new(&mut init, 3, 2, false)] };
/// let names: Vec<String> = m.named_parameters().into_iter().map(|p| p.name).collect();
/// assert_eq!(names, ["scale", "layers.0.weight", "layers.0.bias", "layers.1.weight"]);
/// assert_eq!(m.num_params(), 3 + 9 + 3 + 6);
/// ```
pub trait Module: AsAny + Send + Sync {
    /// Report own parameters (`s.param`), flags (`s.mode`) and children (`s.child`,
    /// `s.layer`) in a fixed order: the order of `named_parameters` and of checkpoints.
    fn visit(&self, s: &mut Scope<'_>);

    /// Call `f` for every parameter.
    fn for_each_param(&self, f: &mut dyn FnMut(ParamRef<'_>)) {
        let mut v = Params(f);
        self.visit(&mut Scope::new(&mut v));
    }

    /// Call `f(path, module)` for every descendant module (not this one), outermost first.
    fn for_each_module(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        let mut v = Modules(f);
        self.visit(&mut Scope::new(&mut v));
    }

    /// Call `f(name, generator)` for every random generator of the model (`blocks.0.mlp.dropout.rng`).
    fn for_each_rng(&self, f: &mut dyn FnMut(&str, &Mutex<Rng>)) {
        let mut v = Rngs(f);
        self.visit(&mut Scope::new(&mut v));
    }

    fn named_parameters(&self) -> Vec<NamedParam> {
        let mut out = Vec::new();
        self.for_each_param(&mut |p| {
            out.push(NamedParam { name: p.name.to_string(), layer: p.layer, tensor: p.tensor.clone() })
        });
        out
    }

    fn parameters(&self) -> Vec<Tensor> {
        let mut out = Vec::new();
        self.for_each_param(&mut |p| out.push(p.tensor.clone()));
        out
    }

    /// The named parameters that require a gradient now.
    fn trainable_parameters(&self) -> Vec<NamedParam> {
        self.named_parameters().into_iter().filter(|p| p.tensor.requires_grad()).collect()
    }

    fn num_params(&self) -> usize {
        let mut n = 0;
        self.for_each_param(&mut |p| n += p.tensor.elem_count());
        n
    }

    fn num_trainable_params(&self) -> usize {
        let mut n = 0;
        self.for_each_param(&mut |p| {
            if p.tensor.requires_grad() {
                n += p.tensor.elem_count()
            }
        });
        n
    }

    /// One past the highest layer index (0 for a module without parameters).
    fn num_layers(&self) -> usize {
        let mut n = 0;
        self.for_each_param(&mut |p| n = n.max(p.layer + 1));
        n
    }

    /// Parameter counts, trainable counts and bytes of parameters and gradients per layer.
    fn layer_stats(&self) -> Vec<LayerStats> {
        let mut stats = vec![LayerStats::default(); self.num_layers()];
        for (i, s) in stats.iter_mut().enumerate() {
            s.layer = i;
        }
        self.for_each_param(&mut |p| stats[p.layer].add(p.tensor));
        stats
    }

    /// Switch `requires_grad` of every parameter whose name matches `pattern` (see
    /// [`name_matches`]); returns how many matched, or an error if none did.
    fn set_requires_grad(&self, pattern: &str, on: bool) -> Result<usize> {
        let mut n = 0;
        self.for_each_param(&mut |p| {
            if name_matches(pattern, p.name) {
                p.tensor.set_requires_grad(on);
                n += 1;
            }
        });
        if n == 0 {
            let some: Vec<String> = self.named_parameters().into_iter().take(4).map(|p| p.name).collect();
            return Err(Error::invalid(
                if on { "unfreeze" } else { "freeze" },
                format!("pattern `{pattern}` matches no parameter (names look like {})", some.join(", ")),
            ));
        }
        Ok(n)
    }

    /// Stop gradients for the parameters matching `pattern`: they record no graph.
    fn freeze(&self, pattern: &str) -> Result<usize> {
        self.set_requires_grad(pattern, false)
    }

    fn unfreeze(&self, pattern: &str) -> Result<usize> {
        self.set_requires_grad(pattern, true)
    }

    /// Switch `requires_grad` of every parameter in layer `layer`.
    fn set_layer_requires_grad(&self, layer: usize, on: bool) -> Result<usize> {
        let mut n = 0;
        self.for_each_param(&mut |p| {
            if p.layer == layer {
                p.tensor.set_requires_grad(on);
                n += 1;
            }
        });
        if n == 0 {
            return Err(Error::invalid(
                if on { "unfreeze_layer" } else { "freeze_layer" },
                format!("layer {layer} has no parameters (the module has {} layers)", self.num_layers()),
            ));
        }
        Ok(n)
    }

    fn freeze_layer(&self, layer: usize) -> Result<usize> {
        self.set_layer_requires_grad(layer, false)
    }

    fn unfreeze_layer(&self, layer: usize) -> Result<usize> {
        self.set_layer_requires_grad(layer, true)
    }

    /// Training mode (dropout active) or evaluation mode, for every flag in the tree.
    fn train(&self, training: bool) {
        let mut v = Modes(|m: &Mode| m.set(training));
        self.visit(&mut Scope::new(&mut v));
    }

    fn eval(&self) {
        self.train(false)
    }

    /// True unless some flag in the tree is in evaluation mode.
    fn is_training(&self) -> bool {
        let mut all = true;
        let mut v = Modes(|m: &Mode| all &= m.is_training());
        self.visit(&mut Scope::new(&mut v));
        all
    }

    /// Drop every parameter's gradient (PyTorch's `zero_grad(set_to_none=True)`).
    fn zero_grad(&self) {
        self.for_each_param(&mut |p| p.tensor.zero_grad());
    }

    /// Move every parameter to `device` (e.g. a model built on the CPU onto `Device::Gpu(0)`),
    /// dropping gradients that were on the old device. Parameters already there, and a
    /// parameter shared by two modules, move once. The optimizers' state follows its
    /// parameters at their next step.
    fn to_device(&self, device: Device) -> Result<()> {
        let mut failed = None;
        self.for_each_param(&mut |p| {
            if failed.is_some() {
                return;
            }
            let v = p.tensor.value();
            if v.device() == device {
                return;
            }
            match v.to_device(device).and_then(|moved| p.tensor.set_value(moved)) {
                Ok(()) => p.tensor.zero_grad(),
                Err(e) => failed = Some(Error::invalid("to_device", format!("moving `{}` to {device}: {e}", p.name))),
            }
        });
        failed.map_or(Ok(()), Err)
    }

    /// The device of the parameters, or an error naming two parameters on different
    /// devices; `None` for a module without parameters.
    fn device(&self) -> Result<Option<Device>> {
        let mut first: Option<(String, Device)> = None;
        let mut clash = None;
        self.for_each_param(&mut |p| {
            let d = p.tensor.device();
            match &first {
                None => first = Some((p.name.to_string(), d)),
                Some((n, d0)) if *d0 != d && clash.is_none() => {
                    clash = Some(format!("`{n}` is on {d0} but `{}` is on {d}", p.name))
                }
                _ => {}
            }
        });
        match clash {
            Some(msg) => Err(Error::invalid("device", msg)),
            None => Ok(first.map(|(_, d)| d)),
        }
    }

    /// The parameter values by name, in visiting order.
    fn state_dict(&self) -> Vec<(String, Array)> {
        let mut out = Vec::new();
        self.for_each_param(&mut |p| out.push((p.name.to_string(), p.tensor.value())));
        out
    }
}

/// Whether `pattern` selects the parameter `name`. `*` matches any run of characters
/// (dots included); a pattern also selects everything below a matching dotted prefix, so
/// `blocks.3` selects `blocks.3.attn.qkv.weight` and `blocks.*.attn` every attention.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    if glob(pattern.as_bytes(), name.as_bytes()) {
        return true;
    }
    name.match_indices('.').any(|(i, _)| glob(pattern.as_bytes(), &name.as_bytes()[..i]))
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard match with backtracking to the last `*`.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A module with a forward pass from one tensor to one tensor.
pub trait Layer: Module {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor>;

    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        match self.try_forward(x) {
            Ok(y) => y,
            Err(e) => panic!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn patterns() {
        assert!(name_matches("blocks.3", "blocks.3.attn.qkv.weight"));
        assert!(!name_matches("blocks.3", "blocks.31.attn.qkv.weight"));
        assert!(name_matches("blocks.*.attn", "blocks.12.attn.proj.bias"));
        assert!(name_matches("*.bias", "blocks.0.mlp.fc1.bias"));
        assert!(!name_matches("*.bias", "blocks.0.mlp.fc1.weight"));
        assert!(name_matches("tok_emb.weight", "tok_emb.weight"));
        assert!(name_matches("*", "x"));
        assert!(!name_matches("head", "heads.weight"));
    }
}

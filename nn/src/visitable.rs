//! What `#[derive(Module)]` calls for each field: how a field of each kind reports itself to
//! a traversal. A type outside this list has no impl, so an unmarked field that is neither a
//! parameter nor a module is a compile error, not a silently missing weight.

use crate::module::{Mode, Module, Scope};
use plies_autodiff::Tensor;
use plies_core::rng::Rng;
use std::sync::Mutex;

/// A field a module's traversal reports under `name`.
pub trait Visitable {
    fn visit_as(&self, name: &str, s: &mut Scope<'_>);
}

/// A parameter.
impl Visitable for Tensor {
    fn visit_as(&self, name: &str, s: &mut Scope<'_>) {
        s.param(name, self);
    }
}

/// A train/eval flag (its name is not part of any path).
impl Visitable for Mode {
    fn visit_as(&self, _name: &str, s: &mut Scope<'_>) {
        s.mode(self);
    }
}

/// A random generator the module draws from (dropout's), saved with a training state.
impl Visitable for Mutex<Rng> {
    fn visit_as(&self, name: &str, s: &mut Scope<'_>) {
        s.rng(name, self);
    }
}

/// A child module.
impl<M: Module> Visitable for M {
    fn visit_as(&self, name: &str, s: &mut Scope<'_>) {
        s.child(name, self);
    }
}

/// An optional parameter or child, visited when present (a bias).
impl<T: Visitable> Visitable for Option<T> {
    fn visit_as(&self, name: &str, s: &mut Scope<'_>) {
        if let Some(v) = self {
            v.visit_as(name, s);
        }
    }
}

/// A list, numbered as PyTorch's ModuleList and ParameterList are (`blocks.3`).
impl<T: Visitable> Visitable for Vec<T> {
    fn visit_as(&self, name: &str, s: &mut Scope<'_>) {
        for (i, v) in self.iter().enumerate() {
            v.visit_as(&format!("{name}.{i}"), s);
        }
    }
}

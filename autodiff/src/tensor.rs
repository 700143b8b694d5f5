//! `Tensor`: an `Array` value plus, when it was computed from tensors that require a
//! gradient, the graph node that backward walks. Cloning a `Tensor` is cheap (a shared
//! handle, like a PyTorch tensor reference).

use crate::graph::Node;
use plies_core::{Array, DType, Device, Error, Layout, Result, Shape};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) id: usize,
    value: RwLock<Array>,
    requires_grad: AtomicBool,
    retain_grad: AtomicBool,
    pub(crate) node: Option<Node>,
    grad: Mutex<Option<Array>>,
}

/// Panic with the error's message at the caller's location: the infallible op variants
/// behave like a PyTorch exception, the `try_` variants return the `Result`.
#[track_caller]
pub(crate) fn ok<T>(r: Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

fn next_id() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Tensor {
    pub(crate) fn build(value: Array, requires_grad: bool, node: Option<Node>) -> Tensor {
        Tensor(Arc::new(Inner {
            id: next_id(),
            value: RwLock::new(value),
            requires_grad: AtomicBool::new(requires_grad),
            retain_grad: AtomicBool::new(false),
            node,
            grad: Mutex::new(None),
        }))
    }

    /// A constant: a leaf that does not require a gradient.
    pub fn new(value: Array) -> Tensor {
        Tensor::build(value, false, None)
    }

    /// A trainable leaf (requires a gradient).
    pub fn param(value: Array) -> Tensor {
        Tensor::build(value, true, None)
    }

    pub fn id(&self) -> usize {
        self.0.id
    }

    /// The current value (a cheap handle to the storage).
    pub fn value(&self) -> Array {
        self.0.value.read().unwrap().clone()
    }

    /// Replace a leaf's value, e.g. an optimizer step. Shape and dtype must not change.
    pub fn set_value(&self, value: Array) -> Result<()> {
        if !self.is_leaf() {
            return Err(Error::invalid("set_value", "only leaf tensors can be assigned"));
        }
        let mut v = self.0.value.write().unwrap();
        if v.shape() != value.shape() {
            return Err(Error::ShapeMismatch { op: "set_value", lhs: v.shape().clone(), rhs: value.shape().clone() });
        }
        if v.dtype() != value.dtype() {
            return Err(Error::DTypeMismatch { op: "set_value", lhs: v.dtype(), rhs: value.dtype() });
        }
        *v = value;
        Ok(())
    }

    pub fn shape(&self) -> Shape {
        self.0.value.read().unwrap().shape().clone()
    }
    pub fn dims(&self) -> Vec<usize> {
        self.shape().into_dims()
    }
    pub fn rank(&self) -> usize {
        self.0.value.read().unwrap().rank()
    }
    pub fn elem_count(&self) -> usize {
        self.0.value.read().unwrap().elem_count()
    }
    pub fn dtype(&self) -> DType {
        self.0.value.read().unwrap().dtype()
    }
    pub fn device(&self) -> Device {
        self.0.value.read().unwrap().device()
    }
    pub fn layout(&self) -> Layout {
        self.0.value.read().unwrap().layout().clone()
    }

    pub fn is_leaf(&self) -> bool {
        self.0.node.is_none()
    }

    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// Switch gradient tracking of a leaf between steps (freezing and unfreezing).
    pub fn set_requires_grad(&self, on: bool) -> &Self {
        assert!(self.is_leaf(), "requires_grad can only be switched on leaf tensors");
        self.0.requires_grad.store(on, Ordering::Relaxed);
        self
    }

    /// Keep the gradient of a non-leaf tensor after backward (like `retain_grad`).
    pub fn retain_grad(&self) -> &Self {
        self.0.retain_grad.store(true, Ordering::Relaxed);
        self
    }

    pub(crate) fn retains_grad(&self) -> bool {
        self.is_leaf() || self.0.retain_grad.load(Ordering::Relaxed)
    }

    /// The accumulated gradient, if backward has produced one.
    pub fn grad(&self) -> Option<Array> {
        self.0.grad.lock().unwrap().clone()
    }

    /// Set or clear the gradient (clearing is `zero_grad` with set_to_none, as in PyTorch).
    pub fn set_grad(&self, g: Option<Array>) {
        *self.0.grad.lock().unwrap() = g;
    }

    pub fn zero_grad(&self) {
        self.set_grad(None);
    }

    /// Add to the stored gradient (accumulation across backward calls).
    pub(crate) fn accumulate_grad(&self, g: Array) -> Result<()> {
        let mut slot = self.0.grad.lock().unwrap();
        let g = match slot.take() {
            Some(old) => old.add(&g)?,
            None => g.contiguous()?,
        };
        *slot = Some(g);
        Ok(())
    }

    /// The same value, cut off from the graph.
    pub fn detach(&self) -> Tensor {
        Tensor::new(self.value())
    }

    /// Values as a Vec (reads back from the device).
    pub fn to_vec<T: plies_core::Element>(&self) -> Vec<T> {
        ok(self.value().to_vec())
    }

    pub fn try_to_vec<T: plies_core::Element>(&self) -> Result<Vec<T>> {
        self.value().to_vec()
    }

    /// The value of a one-element tensor.
    #[track_caller]
    pub fn item(&self) -> f64 {
        ok(self.value().to_scalar::<f64>())
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.value();
        write!(f, "Tensor({:?}", v)?;
        if self.requires_grad() {
            write!(f, ", requires_grad")?;
        }
        if let Some(n) = &self.0.node {
            write!(f, ", op={}", n.name)?;
        }
        write!(f, ")")
    }
}

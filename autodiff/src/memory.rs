//! What the recorded graph holds, and for which layer.
//!
//! Every node remembers the layer in force when an op recorded it (a thread-local set by
//! [`layer_scope`], which the containers' forward passes open around each layer) and the
//! storages its backward rule saved beyond its inputs (outputs, norm statistics, ...: ops
//! declare them with `saving`). [`held_storages`] walks the live graph from a root and lists
//! every storage it keeps alive once, with the layer of the first node (inputs first) that
//! holds it. Recording costs one thread-local read per node; nothing is walked unless asked.

use crate::tensor::Tensor;
use plies_core::Array;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

const NO_LAYER: usize = usize::MAX;

thread_local! {
    static CURRENT_LAYER: Cell<usize> = const { Cell::new(NO_LAYER) };
}

/// While alive, ops recorded on this thread belong to a layer (see [`layer_scope`]).
pub struct LayerScope {
    prev: usize,
}

/// Attribute the ops recorded on this thread to `layer` until the guard drops. As with
/// `Scope::layer` in the module traversal, an enclosing scope wins: a GPT block that runs an
/// MLP keeps the block's index for the MLP's ops.
pub fn layer_scope(layer: usize) -> LayerScope {
    let prev = CURRENT_LAYER.with(|c| c.get());
    if prev == NO_LAYER {
        CURRENT_LAYER.with(|c| c.set(layer));
    }
    LayerScope { prev }
}

impl Drop for LayerScope {
    fn drop(&mut self) {
        CURRENT_LAYER.with(|c| c.set(self.prev));
    }
}

/// The layer ops are attributed to now, if a [`layer_scope`] is open.
pub fn current_layer() -> Option<usize> {
    let l = CURRENT_LAYER.with(|c| c.get());
    (l != NO_LAYER).then_some(l)
}

/// A storage as the walk counts it: identity and size, without keeping it alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StorageKey {
    ptr: usize,
    bytes: usize,
}

impl StorageKey {
    fn of(a: &Array) -> StorageKey {
        StorageKey { ptr: Arc::as_ptr(a.storage()) as *const () as usize, bytes: a.storage_bytes() }
    }
}

/// The memory side of a node: its layer and the extra storages its rule saved. The keys stay
/// valid while the node's body lives, since the rule owns those storages.
pub(crate) struct NodeMem {
    layer: usize,
    extra: OnceLock<Box<[StorageKey]>>,
}

impl NodeMem {
    pub(crate) fn here() -> NodeMem {
        NodeMem { layer: CURRENT_LAYER.with(|c| c.get()), extra: OnceLock::new() }
    }
}

impl Tensor {
    /// Declare arrays the rule of this tensor's node keeps besides its inputs' values, so
    /// the accounting sees them. A tensor without a node is returned unchanged.
    pub(crate) fn saving(self, arrays: &[&Array]) -> Tensor {
        if let Some(node) = &self.0.node {
            let _ = node.mem.extra.set(arrays.iter().map(|a| StorageKey::of(a)).collect());
        }
        self
    }

    /// The layer whose forward recorded this tensor's node (None: a leaf, or recorded
    /// outside every [`layer_scope`]).
    pub fn recorded_layer(&self) -> Option<usize> {
        self.0.node.as_ref().map(|n| n.mem.layer).filter(|&l| l != NO_LAYER)
    }
}

/// One storage the graph keeps alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldStorage {
    /// Identity of the storage (its address; equal for every view of it).
    pub key: usize,
    pub bytes: usize,
    /// The layer of the first node (inputs first) holding it; None outside every layer scope.
    pub layer: Option<usize>,
}

/// What the live graph below `root` holds: each storage once, and the leaves requiring a
/// gradient that backward from `root` will reach. The root's own value is not counted (the
/// caller holds it). After `backward` the nodes are freed and the list is empty.
pub fn held_storages(root: &Tensor) -> (Vec<HeldStorage>, Vec<Tensor>) {
    let mut held: Vec<HeldStorage> = Vec::new();
    let mut index: HashMap<usize, usize> = HashMap::new();
    let mut leaves = Vec::new();
    for t in crate::graph::topo_order(root) {
        if t.is_leaf() {
            if t.requires_grad() {
                leaves.push(t.clone());
            }
            continue;
        }
        let Some(node) = &t.0.node else { continue };
        let layer = (node.mem.layer != NO_LAYER).then_some(node.mem.layer);
        let body = node.body.lock().unwrap();
        let Some((inputs, _)) = body.as_ref() else { continue };
        let extra = node.mem.extra.get().map(|e| e.as_ref()).unwrap_or(&[]);
        let keys = inputs.iter().map(|i| StorageKey::of(&i.value())).chain(extra.iter().copied());
        for k in keys {
            index.entry(k.ptr).or_insert_with(|| {
                held.push(HeldStorage { key: k.ptr, bytes: k.bytes, layer });
                held.len() - 1
            });
        }
    }
    (held, leaves)
}

/// The identity [`HeldStorage::key`] gives `a`'s storage (to exclude, e.g., parameters).
pub fn storage_key(a: &Array) -> usize {
    StorageKey::of(a).ptr
}

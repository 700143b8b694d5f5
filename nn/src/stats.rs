//! Per-layer accounting: parameter counts and bytes of parameters, gradients and optimizer
//! state, so layer-wise methods can report what each layer costs.

use plies_autodiff::Tensor;

/// What one layer holds. Bytes count elements times dtype size (views are not shared here:
/// parameters are distinct leaves).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerStats {
    pub layer: usize,
    /// Parameter tensors in the layer.
    pub tensors: usize,
    /// Parameter elements in the layer.
    pub params: usize,
    /// Elements of the parameters that require a gradient now.
    pub trainable: usize,
    pub param_bytes: usize,
    /// Bytes of the gradients currently held (0 after `zero_grad`).
    pub grad_bytes: usize,
    /// Bytes of optimizer state (filled in by `Optimizer::add_state_bytes`).
    pub optimizer_bytes: usize,
}

impl LayerStats {
    pub(crate) fn add(&mut self, t: &Tensor) {
        let n = t.elem_count();
        let size = t.dtype().size_in_bytes();
        self.tensors += 1;
        self.params += n;
        if t.requires_grad() {
            self.trainable += n;
        }
        self.param_bytes += n * size;
        if let Some(g) = t.grad() {
            self.grad_bytes += g.elem_count() * g.dtype().size_in_bytes();
        }
    }
}

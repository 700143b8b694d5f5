//! The check a hand-written `visit` cannot do for itself: a trainable tensor that takes part
//! in the forward pass but that `visit` does not report gets no optimizer update and is missed
//! by checkpoints, `to_device` and freezing, silently. `#[derive(Module)]` visits every field;
//! for modules that write `visit` by hand, this finds the omission from one forward pass.

use crate::module::Module;
use plies_autodiff::{Error, Result, Tensor};
use std::collections::HashSet;

/// Err when `out`'s graph (a forward output or a loss of `model`) reaches a tensor that
/// requires a gradient but is not a parameter `model` visits. Inputs that were made to
/// require a gradient on purpose count as such tensors too: pass an output of inputs that
/// do not.
pub fn check_visited(model: &dyn Module, out: &Tensor) -> Result<()> {
    let visited: HashSet<usize> = model.named_parameters().iter().map(|p| p.tensor.id()).collect();
    let missing: Vec<String> = out
        .graph_leaves()
        .iter()
        .filter(|t| !visited.contains(&t.id()))
        .map(|t| format!("{} {}", t.dtype(), t.shape()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(
        "check_visited",
        format!(
            "{} tensor(s) requiring a gradient take part in the forward pass but are not visited by the \
             module, so no optimizer, checkpoint, to_device or freeze sees them: {}; a hand-written \
             `visit` is missing an `s.param` or `s.child` (or use #[derive(Module)])",
            missing.len(),
            missing.join(", ")
        ),
    ))
}

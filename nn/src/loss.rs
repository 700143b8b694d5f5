//! Losses with PyTorch's semantics. Class scores are on the last axis (logits `[.., C]`
//! against targets `[..]`), which for `[batch, time, vocab]` logits saves the transpose
//! PyTorch needs.

use plies_autodiff::{CrossEntropyOpts, Error, Reduction, Result, Tensor};

/// Options of [`cross_entropy`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossEntropy {
    /// Targets equal to this contribute nothing (and are not counted by `Mean`).
    pub ignore_index: i64,
    /// Mix the one-hot target with the uniform distribution by this much.
    pub label_smoothing: f64,
    pub reduction: Reduction,
}

impl Default for CrossEntropy {
    fn default() -> Self {
        CrossEntropy { ignore_index: -100, label_smoothing: 0.0, reduction: Reduction::Mean }
    }
}

/// Cross-entropy of logits `[.., C]` against i32 class targets `[..]` (fused kernel), with
/// PyTorch's options. The one loss API: `logits.try_cross_entropy(&targets)` is this with the
/// defaults, and both run the same op, which checks the options and shapes.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, opts: CrossEntropy) -> Result<Tensor> {
    let o = CrossEntropyOpts { ignore_index: opts.ignore_index, label_smoothing: opts.label_smoothing };
    logits.try_cross_entropy_with(targets, o, opts.reduction)
}

fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::ShapeMismatch { op, lhs: a.shape(), rhs: b.shape() });
    }
    Ok(())
}

fn reduce(x: Tensor, reduction: Reduction) -> Result<Tensor> {
    match reduction {
        Reduction::Mean => x.try_mean_all(),
        Reduction::Sum => x.try_sum_all(),
        Reduction::None => Ok(x),
    }
}

/// Mean (or summed) squared error.
pub fn mse(pred: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_shape("mse", pred, target)?;
    reduce(pred.try_sub(target)?.try_sqr()?, reduction)
}

/// Mean (or summed) absolute error; the gradient at 0 is 0, as in PyTorch.
pub fn l1(pred: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_shape("l1", pred, target)?;
    reduce(pred.try_sub(target)?.try_abs()?, reduction)
}

/// Binary cross-entropy of probabilities `p` in [0, 1] against targets in [0, 1]:
/// `-(y log p + (1 - y) log(1 - p))`, each log clamped at -100 as PyTorch does.
pub fn binary_cross_entropy(p: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_shape("binary_cross_entropy", p, target)?;
    let log_p = p.try_log()?.try_clamp(-100.0, f64::INFINITY)?;
    let log_q = p.try_affine(-1.0, 1.0)?.try_log()?.try_clamp(-100.0, f64::INFINITY)?;
    let y = target;
    let l = y.try_mul(&log_p)?.try_add(&y.try_affine(-1.0, 1.0)?.try_mul(&log_q)?)?.try_neg()?;
    reduce(l, reduction)
}

/// Binary cross-entropy on logits `x`, computed stably as
/// `max(x, 0) - x y + log(1 + exp(-|x|))`.
pub fn binary_cross_entropy_with_logits(x: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_shape("binary_cross_entropy_with_logits", x, target)?;
    let softplus = x.try_abs()?.try_neg()?.try_exp()?.try_add_scalar(1.0)?.try_log()?;
    let l = x.try_relu()?.try_sub(&x.try_mul(target)?)?.try_add(&softplus)?;
    reduce(l, reduction)
}

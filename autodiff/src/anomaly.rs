//! Anomaly detection: name the first op that turns finite values into a NaN or an Inf.
//!
//! Off by default. The switch is one process-wide atomic, read with a relaxed load per op,
//! so leaving it off costs nothing measurable. On, every op's output and every gradient a
//! backward rule returns is probed on its device (one reduction and a scalar readback), and
//! the values are read back in full only to describe an anomaly once one is found.
//!
//! Blame goes to the op that created the non-finite values, not to those that carried them
//! on: an op whose own inputs already hold a NaN or an Inf (user data, an `-inf` attention
//! mask, a parameter the optimizer broke) is not reported, so the first report is where
//! finite values went wrong.

use crate::Tensor;
use plies_core::{AllAxes, Array, Error, Pass, Result};
use std::sync::atomic::{AtomicU8, Ordering};

const UNSET: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNSET);

/// Turn anomaly detection on or off for the whole process (like PyTorch's
/// `torch.autograd.set_detect_anomaly`).
///
/// While on, the first op whose forward output, or whose backward gradient for one of its
/// inputs, holds a NaN or an Inf returns [`Error::Anomaly`] from its `try_` form (its
/// panicking form panics with the same message), naming the op, its input shapes, the pass
/// and, for backward, the forward op that recorded the node. An op is only blamed when
/// everything it computed from was finite: its inputs in forward; in backward, the upstream
/// gradient and the forward inputs. So a NaN that is already in the data is carried through
/// silently, and the report points at the op that made the first one.
///
/// Without a call, the environment variable `PLIES_DETECT_ANOMALY=1` turns it on (read once,
/// at the first op); a call always wins over the variable. Each checked op costs a device
/// reduction and a readback, which makes a training step several times slower: it is for
/// finding a bug, not for production runs. Off, the cost is one relaxed atomic load per op.
/// Ops that record no node (comparisons, `argmax`, `one_hot`, constructors) only produce
/// finite values from their arguments and are not checked. Values that do not come from an
/// op (data, `set_value`, an optimizer step) are not checked either: an op that reads a
/// parameter an optimizer turned into NaN is not blamed, so look at the step before.
///
/// ```
/// use plies_autodiff::{AnomalyGuard, Device, Tensor};
///
/// let _on = AnomalyGuard::new(true); // detect_anomaly(true) until dropped
/// let x = Tensor::from_vec(vec![1.0f32, -1.0], [2], Device::Cpu);
/// let e = x.try_log().unwrap_err().to_string();
/// assert!(e.contains("log") && e.contains("forward"), "{e}");
/// ```
pub fn detect_anomaly(on: bool) {
    STATE.store(if on { ON } else { OFF }, Ordering::Relaxed);
}

/// Whether anomaly detection is on (see [`detect_anomaly`]).
#[inline]
pub fn is_anomaly_enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        UNSET => from_env(),
        s => s == ON,
    }
}

#[cold]
fn from_env() -> bool {
    let want = if std::env::var("PLIES_DETECT_ANOMALY").is_ok_and(|v| v.trim() == "1") { ON } else { OFF };
    // A `detect_anomaly` call racing with this first read keeps its setting.
    match STATE.compare_exchange(UNSET, want, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => want == ON,
        Err(now) => now == ON,
    }
}

/// Anomaly detection on (or off) while alive; the previous setting comes back on drop.
/// The switch is process-wide, so other threads see it too.
pub struct AnomalyGuard {
    prev: bool,
}

impl AnomalyGuard {
    pub fn new(on: bool) -> Self {
        let prev = is_anomaly_enabled();
        detect_anomaly(on);
        AnomalyGuard { prev }
    }
}

impl Drop for AnomalyGuard {
    fn drop(&mut self) {
        detect_anomaly(self.prev);
    }
}

/// Where the non-finite values of an array are, for the message.
struct Census {
    nan: usize,
    inf: usize,
    total: usize,
    first: usize,
    first_value: f64,
}

impl std::fmt::Display for Census {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} NaN and {} Inf among {} values (first at flat index {}: {})",
            self.nan, self.inf, self.total, self.first, self.first_value
        )
    }
}

/// Whether `a` holds only finite values; integer arrays always do.
fn is_finite(a: &Array) -> Result<bool> {
    if !a.dtype().is_float() || a.elem_count() == 0 {
        return Ok(true);
    }
    // x * 0 is 0 for every finite x and NaN for NaN and ±Inf, and a sum of zeros cannot
    // overflow, so one scalar comes back instead of the whole array.
    Ok(a.mul_scalar(0.0)?.sum(AllAxes, false)?.to_scalar::<f64>()?.is_finite())
}

fn census(a: &Array) -> Result<Census> {
    let v = a.to_vec::<f64>()?;
    let first = v.iter().position(|x| !x.is_finite()).unwrap_or(0);
    Ok(Census {
        nan: v.iter().filter(|x| x.is_nan()).count(),
        inf: v.iter().filter(|x| x.is_infinite()).count(),
        total: v.len(),
        first,
        first_value: v.get(first).copied().unwrap_or(f64::NAN),
    })
}

fn all_finite(inputs: &[&Tensor]) -> Result<bool> {
    for t in inputs {
        if !is_finite(&t.value())? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// An op's output: an error when it is not finite although its inputs are.
pub(crate) fn check_forward(op: &'static str, value: &Array, inputs: &[&Tensor]) -> Result<()> {
    if is_finite(value)? || !all_finite(inputs)? {
        return Ok(());
    }
    Err(Error::Anomaly {
        op,
        pass: Pass::Forward,
        inputs: inputs.iter().map(|t| t.shape()).collect(),
        msg: format!("returned {} from finite inputs (output shape {})", census(value)?, value.shape()),
    })
}

/// The gradient a node's rule returned for input `index`: an error when it is not finite
/// although the upstream gradient and the node's forward inputs are.
pub(crate) fn check_backward(
    op: &'static str,
    inputs: &[Tensor],
    index: usize,
    grad: &Array,
    upstream: &Array,
) -> Result<()> {
    let inputs: Vec<&Tensor> = inputs.iter().collect();
    if is_finite(grad)? || !is_finite(upstream)? || !all_finite(&inputs)? {
        return Ok(());
    }
    Err(Error::Anomaly {
        op,
        pass: Pass::Backward,
        inputs: inputs.iter().map(|t| t.shape()).collect(),
        msg: format!(
            "returned {} in the gradient for input {index} (shape {}), from a finite upstream gradient \
             (shape {}) and finite inputs",
            census(grad)?,
            grad.shape(),
            upstream.shape()
        ),
    })
}

/// The gradients for input `index` of a node from two of its uses, finite each, whose sum
/// overflowed.
pub(crate) fn check_accumulated(
    op: &'static str,
    inputs: &[Tensor],
    index: usize,
    sum: &Array,
    parts: [&Array; 2],
) -> Result<()> {
    if is_finite(sum)? || !is_finite(parts[0])? || !is_finite(parts[1])? {
        return Ok(());
    }
    Err(Error::Anomaly {
        op,
        pass: Pass::Backward,
        inputs: inputs.iter().map(|t| t.shape()).collect(),
        msg: format!(
            "returned a finite gradient for input {index} that overflowed when added to the finite gradient \
             from its other uses: the sum holds {}",
            census(sum)?
        ),
    })
}

//! Elementwise ops of one tensor. The derivative of each lives beside its forward in the
//! backend (`unary_grad`), so the rule here is the same one line for all of them.

use super::infallible;
use crate::Tensor;
use plies_core::{Result, UnaryOp};

impl Tensor {
    /// Any unary op; its gradient is `grad * op'(x)`.
    pub fn try_unary(&self, op: UnaryOp) -> Result<Tensor> {
        let x = self.value();
        let y = x.unary(op)?;
        Tensor::record(op.name(), y, &[self], move |g, _| Ok(vec![Some(x.unary_grad(op, g)?)]))
    }

    pub fn try_exp(&self) -> Result<Tensor> {
        // d exp(x) = exp(x): reuse the output instead of recomputing it.
        let y = self.value().exp()?;
        let (saved, keep) = (y.clone(), y.clone());
        let out = Tensor::record("exp", y, &[self], move |g, _| Ok(vec![Some(g.mul(&saved)?)]))?;
        Ok(out.saving(&[&keep]))
    }

    pub fn try_affine(&self, mul: f64, add: f64) -> Result<Tensor> {
        self.try_unary(UnaryOp::Affine { mul, add })
    }

    /// Clamp into `[min, max]`; the gradient is 1 strictly inside, 0 outside.
    pub fn try_clamp(&self, min: f64, max: f64) -> Result<Tensor> {
        self.try_unary(UnaryOp::MaxScalar(min))?.try_unary(UnaryOp::MinScalar(max))
    }
}

/// `try_<op>` and `<op>` for each op of `plies_core::with_plain_unary_ops` (the table in
/// core/src/op.rs), all with the one generic rule of `try_unary`.
macro_rules! unary_ops {
    ($($name:ident, $try:ident => $op:ident;)*) => {
        impl Tensor {
            $(pub fn $try(&self) -> Result<Tensor> { self.try_unary(UnaryOp::$op) })*
        }
        infallible! { $($name => $try();)* }
    };
}

plies_core::with_plain_unary_ops!(unary_ops);

impl Tensor {
    pub fn try_powf(&self, e: f64) -> Result<Tensor> {
        self.try_unary(UnaryOp::Powf(e))
    }
    pub fn try_add_scalar(&self, v: f64) -> Result<Tensor> {
        self.try_affine(1.0, v)
    }
    pub fn try_mul_scalar(&self, v: f64) -> Result<Tensor> {
        self.try_affine(v, 0.0)
    }
}

infallible! {
    unary => try_unary(op: UnaryOp);
    exp => try_exp();
    affine => try_affine(mul: f64, add: f64);
    clamp => try_clamp(min: f64, max: f64);
    powf => try_powf(e: f64);
    add_scalar => try_add_scalar(v: f64);
    mul_scalar => try_mul_scalar(v: f64);
}

//! Elementwise ops of two tensors with numpy broadcasting, comparisons and `where`.
//! Rules return gradients in the broadcast shape; `backward` sums them down.

use super::infallible;
use crate::Tensor;
use plies_core::{Array, BinaryOp, Result, Shape};

impl Tensor {
    pub fn try_add(&self, rhs: &Tensor) -> Result<Tensor> {
        let y = self.value().add(&rhs.value())?;
        Tensor::record("add", y, &[self, rhs], |g, _| Ok(vec![Some(g.clone()), Some(g.clone())]))
    }

    pub fn try_sub(&self, rhs: &Tensor) -> Result<Tensor> {
        let y = self.value().sub(&rhs.value())?;
        Tensor::record("sub", y, &[self, rhs], |g, need| {
            Ok(vec![Some(g.clone()), if need[1] { Some(g.neg()?) } else { None }])
        })
    }

    pub fn try_mul(&self, rhs: &Tensor) -> Result<Tensor> {
        let (a, b) = (self.value(), rhs.value());
        let y = a.mul(&b)?;
        Tensor::record("mul", y, &[self, rhs], move |g, need| {
            Ok(vec![if need[0] { Some(g.mul(&b)?) } else { None }, if need[1] { Some(g.mul(&a)?) } else { None }])
        })
    }

    pub fn try_div(&self, rhs: &Tensor) -> Result<Tensor> {
        let (a, b) = (self.value(), rhs.value());
        let y = a.div(&b)?;
        Tensor::record("div", y, &[self, rhs], move |g, need| {
            let ga = g.div(&b)?;
            // d(a/b)/db = -a/b^2 = -(g/b) * (a/b)
            let gb = if need[1] { Some(ga.mul(&a.div(&b)?)?.neg()?) } else { None };
            Ok(vec![Some(ga), gb])
        })
    }

    pub fn try_pow(&self, rhs: &Tensor) -> Result<Tensor> {
        let (a, b) = (self.value(), rhs.value());
        let y = a.pow(&b)?;
        let saved = y.clone();
        let keep = saved.clone();
        let out = Tensor::record("pow", y, &[self, rhs], move |g, need| {
            // d a^b / da = b a^(b-1);  d a^b / db = a^b ln a
            let ga = if need[0] { Some(g.mul(&b.mul(&a.pow(&b.add_scalar(-1.0)?)?)?)?) } else { None };
            let gb = if need[1] { Some(g.mul(&saved.mul(&a.log()?)?)?) } else { None };
            Ok(vec![ga, gb])
        })?;
        Ok(out.saving(&[&keep]))
    }

    /// Elementwise max; at ties the gradient is split evenly (as torch.maximum).
    pub fn try_maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.extremum(rhs, BinaryOp::Maximum, BinaryOp::Gt)
    }

    pub fn try_minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.extremum(rhs, BinaryOp::Minimum, BinaryOp::Lt)
    }

    fn extremum(&self, rhs: &Tensor, op: BinaryOp, wins: BinaryOp) -> Result<Tensor> {
        let (a, b) = (self.value(), rhs.value());
        let y = a.binary(op, &b)?;
        Tensor::record(op.name(), y, &[self, rhs], move |g, _| {
            // share of the gradient that goes to a: 1 where a wins, 1/2 at ties
            let share_a = a.binary(wins, &b)?.add(&a.eq(&b)?.mul_scalar(0.5)?)?;
            let share_b = share_a.affine(-1.0, 1.0)?;
            Ok(vec![Some(g.mul(&share_a)?), Some(g.mul(&share_b)?)])
        })
    }

    /// A comparison: 1 where true, 0 elsewhere, in the inputs' dtype. Not differentiable.
    pub fn try_compare(&self, op: BinaryOp, rhs: &Tensor) -> Result<Tensor> {
        Ok(Tensor::new(self.value().binary(op, &rhs.value())?))
    }

    /// Compare with a scalar.
    pub fn try_compare_scalar(&self, op: BinaryOp, v: f64) -> Result<Tensor> {
        Ok(Tensor::new(self.value().cmp_scalar(op, v)?))
    }

    /// `cond != 0 ? on_true : on_false`, broadcasting all three; `cond` gets no gradient.
    pub fn try_where_cond(cond: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        let c = cond.value();
        let y = Array::where_cond(&c, &on_true.value(), &on_false.value())?;
        Tensor::record("where", y, &[cond, on_true, on_false], move |g, need| {
            let zero = g.scalar_like(0.0, &Shape::scalar())?;
            Ok(vec![
                None,
                if need[1] { Some(Array::where_cond(&c, g, &zero)?) } else { None },
                if need[2] { Some(Array::where_cond(&c, &zero, g)?) } else { None },
            ])
        })
    }

    /// `where(cond, on_true, on_false)` (infallible).
    #[track_caller]
    pub fn where_cond(cond: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Tensor {
        crate::tensor::ok(Tensor::try_where_cond(cond, on_true, on_false))
    }

    /// `value` where `mask != 0`, else `self`.
    pub fn try_masked_fill(&self, mask: &Tensor, value: f64) -> Result<Tensor> {
        let v = self.value();
        let fill = Tensor::new(v.scalar_like(value, &Shape::scalar())?);
        Tensor::try_where_cond(mask, &fill, self)
    }
}

infallible! {
    add => try_add(rhs: &Tensor);
    sub => try_sub(rhs: &Tensor);
    mul => try_mul(rhs: &Tensor);
    div => try_div(rhs: &Tensor);
    pow => try_pow(rhs: &Tensor);
    maximum => try_maximum(rhs: &Tensor);
    minimum => try_minimum(rhs: &Tensor);
    compare => try_compare(op: BinaryOp, rhs: &Tensor);
    compare_scalar => try_compare_scalar(op: BinaryOp, v: f64);
    masked_fill => try_masked_fill(mask: &Tensor, value: f64);
}

macro_rules! comparisons {
    ($($name:ident => $op:expr;)*) => {
        impl Tensor {
            $(
                #[track_caller]
                pub fn $name(&self, rhs: &Tensor) -> Tensor { self.compare($op, rhs) }
            )*
        }
    };
}

comparisons! {
    eq => BinaryOp::Eq;
    ne => BinaryOp::Ne;
    lt => BinaryOp::Lt;
    le => BinaryOp::Le;
    gt => BinaryOp::Gt;
    ge => BinaryOp::Ge;
}

//! Batched matmul. 1-d operands are lifted to matrices with recorded views, so the rule
//! below only sees rank >= 2; broadcast batch dims are summed back by `backward`.

use super::infallible;
use crate::Tensor;
use plies_core::{Error, Result};

impl Tensor {
    pub fn try_matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        let err = || Error::ShapeMismatch { op: "matmul", lhs: self.shape(), rhs: rhs.shape() };
        if self.rank() == 0 || rhs.rank() == 0 {
            return Err(err());
        }
        if self.rank() == 1 || rhs.rank() == 1 {
            let a = if self.rank() == 1 { self.try_unsqueeze(0)? } else { self.clone() };
            let b = if rhs.rank() == 1 { rhs.try_unsqueeze(1)? } else { rhs.clone() };
            // Errors name the shapes the caller gave, not the lifted ones.
            let y = a.try_matmul(&b).map_err(|e| if let Error::ShapeMismatch { .. } = e { err() } else { e })?;
            let mut dims = y.dims();
            let r = dims.len();
            if rhs.rank() == 1 {
                dims.remove(r - 1);
            }
            if self.rank() == 1 {
                dims.remove(r - 2);
            }
            return y.try_reshape(dims);
        }
        let (a, b) = (self.value(), rhs.value());
        let y = a.matmul(&b)?;
        Tensor::record("matmul", y, &[self, rhs], move |g, need| {
            // dA = g B^T, dB = A^T g (the transposes are views: gemm reads them in place)
            Ok(vec![
                if need[0] { Some(g.matmul(&b.t()?)?) } else { None },
                if need[1] { Some(a.t()?.matmul(g)?) } else { None },
            ])
        })
    }
}

impl Tensor {
    /// `self W^T + b` (PyTorch's `F.linear`) for rows `self` `[.., in]`, `weight` `[out, in]`
    /// and `bias` `[out]`: the transposed weight is a view the matmul reads in place.
    pub fn try_linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let y = self.try_matmul(&weight.try_t()?)?;
        match bias {
            Some(b) => y.try_add(b),
            None => Ok(y),
        }
    }
}

infallible! {
    linear => try_linear(weight: &Tensor, bias: Option<&Tensor>);
    matmul => try_matmul(rhs: &Tensor);
}

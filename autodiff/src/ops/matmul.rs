//! Batched matmul. 1-d operands are lifted to matrices with recorded views, so the rule
//! below only sees rank >= 2; broadcast batch dims are summed back by `backward`.

use super::infallible;
use crate::Tensor;
use plies_core::{Error, Result};

impl Tensor {
    pub fn try_matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        if self.rank() == 0 || rhs.rank() == 0 {
            return Err(Error::ShapeMismatch { op: "matmul", lhs: self.shape(), rhs: rhs.shape() });
        }
        if self.rank() == 1 {
            return self.try_unsqueeze(0)?.try_matmul(rhs)?.try_squeeze(-2);
        }
        if rhs.rank() == 1 {
            return self.try_matmul(&rhs.try_unsqueeze(1)?)?.try_squeeze(-1);
        }
        let (a, b) = (self.value(), rhs.value());
        let y = a.matmul(&b)?;
        Ok(Tensor::record("matmul", y, &[self, rhs], move |g, need| {
            // dA = g B^T, dB = A^T g (the transposes are views: gemm reads them in place)
            Ok(vec![
                if need[0] { Some(g.matmul(&b.t()?)?) } else { None },
                if need[1] { Some(a.t()?.matmul(g)?) } else { None },
            ])
        }))
    }
}

infallible! {
    matmul => try_matmul(rhs: &Tensor);
}

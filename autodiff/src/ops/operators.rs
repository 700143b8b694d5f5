//! `+ - * /` and unary `-` on tensors and scalars, by value or by reference.

use crate::Tensor;
use std::ops::{Add, Div, Mul, Neg, Sub};

macro_rules! bin_op {
    ($trait:ident, $method:ident, $f:ident, $scalar:expr) => {
        impl $trait<&Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$f(self, rhs)
            }
        }
        impl $trait<Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$f(&self, &rhs)
            }
        }
        impl $trait<&Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$f(&self, rhs)
            }
        }
        impl $trait<Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$f(self, &rhs)
            }
        }
        impl $trait<f64> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: f64) -> Tensor {
                let (mul, add): (f64, f64) = $scalar(rhs);
                self.affine(mul, add)
            }
        }
        impl $trait<f64> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: f64) -> Tensor {
                $trait::<f64>::$method(&self, rhs)
            }
        }
    };
}

bin_op!(Add, add, add, |v: f64| (1.0, v));
bin_op!(Sub, sub, sub, |v: f64| (1.0, -v));
bin_op!(Mul, mul, mul, |v: f64| (v, 0.0));
bin_op!(Div, div, div, |v: f64| (1.0 / v, 0.0));

impl Neg for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}

impl Neg for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        Tensor::neg(&self)
    }
}

//! Shapes, numpy broadcasting, and axis arguments (negative axes count from the end).

use crate::{Error, Result};
use std::fmt;

#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    pub fn new(dims: Vec<usize>) -> Self {
        Shape(dims)
    }
    pub fn scalar() -> Self {
        Shape(vec![])
    }
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    pub fn elem_count(&self) -> usize {
        self.0.iter().product()
    }
    pub fn dim(&self, axis: usize) -> usize {
        self.0[axis]
    }
    pub fn into_dims(self) -> Vec<usize> {
        self.0
    }

    /// Row-major strides, in elements.
    pub fn contiguous_strides(&self) -> Vec<usize> {
        let mut strides = vec![0; self.rank()];
        let mut acc = 1;
        for (s, &d) in strides.iter_mut().zip(&self.0).rev() {
            *s = acc;
            acc *= d;
        }
        strides
    }

    /// The numpy broadcast of two shapes, aligned at the trailing dimension.
    pub fn broadcast(&self, other: &Shape, op: &'static str) -> Result<Shape> {
        let (a, b) = (self.dims(), other.dims());
        let rank = a.len().max(b.len());
        let mut out = vec![0; rank];
        for i in 0..rank {
            let da = if i < rank - a.len() { 1 } else { a[i - (rank - a.len())] };
            let db = if i < rank - b.len() { 1 } else { b[i - (rank - b.len())] };
            out[i] = match (da, db) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => return Err(Error::Broadcast { op, lhs: self.clone(), rhs: other.clone() }),
            };
        }
        Ok(Shape(out))
    }

    /// Resolve one axis argument against this shape's rank.
    pub fn axis(&self, axis: impl Axis, op: &'static str) -> Result<usize> {
        axis.resolve(self.rank(), op)
    }

    /// Resolve a list of axes, sorted and without duplicates.
    pub fn axes(&self, axes: impl Axes, op: &'static str) -> Result<Vec<usize>> {
        let mut v = axes.resolve_all(self.rank(), op)?;
        v.sort_unstable();
        if v.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::invalid(op, format!("axis repeated in {v:?}")));
        }
        Ok(v)
    }

    /// Resolve the shape of a reshape target where one dimension may be `-1`.
    pub fn infer(&self, target: &[i64], op: &'static str) -> Result<Shape> {
        let n = self.elem_count();
        let mut free = None;
        let mut known = 1usize;
        for (i, &d) in target.iter().enumerate() {
            if d == -1 {
                if free.replace(i).is_some() {
                    return Err(Error::invalid(op, "only one dimension can be -1"));
                }
            } else if d < 0 {
                return Err(Error::invalid(op, format!("negative dimension {d}")));
            } else {
                known *= d as usize;
            }
        }
        let mut dims: Vec<usize> = target.iter().map(|&d| d.max(0) as usize).collect();
        if let Some(i) = free {
            if known == 0 || !n.is_multiple_of(known) {
                return Err(Error::invalid(
                    op,
                    format!("cannot infer -1 reshaping {self} ({n} elements) to {target:?}"),
                ));
            }
            dims[i] = n / known;
        }
        let to = Shape(dims);
        if to.elem_count() != n {
            return Err(Error::ElementCount { op, from: self.clone(), to });
        }
        Ok(to)
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape(v)
    }
}
impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(v.to_vec())
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(v.to_vec())
    }
}
impl<const N: usize> From<&[usize; N]> for Shape {
    fn from(v: &[usize; N]) -> Self {
        Shape(v.to_vec())
    }
}
impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}
impl From<()> for Shape {
    fn from(_: ()) -> Self {
        Shape(vec![])
    }
}
impl From<usize> for Shape {
    fn from(d: usize) -> Self {
        Shape(vec![d])
    }
}

/// An axis argument: a `usize`, or a signed integer where `-1` is the last axis.
pub trait Axis: Copy {
    fn resolve(self, rank: usize, op: &'static str) -> Result<usize>;
}

macro_rules! signed_axis {
    ($($t:ty),*) => {$(
        impl Axis for $t {
            fn resolve(self, rank: usize, op: &'static str) -> Result<usize> {
                let a = self as i64;
                let r = rank as i64;
                if a >= r || a < -r {
                    return Err(Error::AxisOutOfRange { op, axis: a, rank });
                }
                Ok(if a < 0 { (a + r) as usize } else { a as usize })
            }
        }
    )*};
}
signed_axis!(i32, i64, isize);

impl Axis for usize {
    fn resolve(self, rank: usize, op: &'static str) -> Result<usize> {
        if self >= rank {
            return Err(Error::AxisOutOfRange { op, axis: self as i64, rank });
        }
        Ok(self)
    }
}

/// A set of axes: one axis, a slice or array of them, or `AllAxes`.
pub trait Axes {
    fn resolve_all(&self, rank: usize, op: &'static str) -> Result<Vec<usize>>;
}

/// Every axis of the tensor (a full reduction).
#[derive(Clone, Copy, Debug)]
pub struct AllAxes;

impl Axes for AllAxes {
    fn resolve_all(&self, rank: usize, _: &'static str) -> Result<Vec<usize>> {
        Ok((0..rank).collect())
    }
}

impl<T: Axis> Axes for [T] {
    fn resolve_all(&self, rank: usize, op: &'static str) -> Result<Vec<usize>> {
        self.iter().map(|a| a.resolve(rank, op)).collect()
    }
}
impl<T: Axis, const N: usize> Axes for [T; N] {
    fn resolve_all(&self, rank: usize, op: &'static str) -> Result<Vec<usize>> {
        self.iter().map(|a| a.resolve(rank, op)).collect()
    }
}
impl<T: Axis> Axes for Vec<T> {
    fn resolve_all(&self, rank: usize, op: &'static str) -> Result<Vec<usize>> {
        self.iter().map(|a| a.resolve(rank, op)).collect()
    }
}
impl<A: Axes + ?Sized> Axes for &A {
    fn resolve_all(&self, rank: usize, op: &'static str) -> Result<Vec<usize>> {
        (**self).resolve_all(rank, op)
    }
}
macro_rules! single_axes {
    ($($t:ty),*) => {$(
        impl Axes for $t {
            fn resolve_all(&self, rank: usize, op: &'static str) -> Result<Vec<usize>> {
                Ok(vec![self.resolve(rank, op)?])
            }
        }
    )*};
}
single_axes!(usize, i32, i64, isize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy() {
        let a = Shape::from([4, 1, 3]);
        let b = Shape::from([5, 1]);
        assert_eq!(a.broadcast(&b, "add").unwrap(), Shape::from([4, 5, 3]));
        let e = Shape::from([2, 3]).broadcast(&Shape::from([4]), "add").unwrap_err();
        assert_eq!(e.to_string(), "cannot broadcast shapes in add: lhs [2, 3], rhs [4]");
    }

    #[test]
    fn axes_resolve_negative_and_reject_out_of_range() {
        let s = Shape::from([2, 3, 4]);
        assert_eq!(s.axis(-1, "sum").unwrap(), 2);
        let e = s.axis(3usize, "sum").unwrap_err();
        assert_eq!(e.to_string(), "axis 3 out of range in sum for a tensor of rank 3");
        assert_eq!(s.axes([-1, 0], "sum").unwrap(), vec![0, 2]);
        assert!(s.axes([1, -2], "sum").is_err());
    }

    #[test]
    fn infer_fills_minus_one() {
        let s = Shape::from([2, 3, 4]);
        assert_eq!(s.infer(&[-1, 4], "reshape").unwrap(), Shape::from([6, 4]));
        assert!(s.infer(&[5, -1], "reshape").is_err());
        assert!(s.infer(&[5, 5], "reshape").is_err());
    }
}

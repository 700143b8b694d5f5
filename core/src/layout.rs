//! How a tensor's elements sit in its storage: shape, strides (in elements) and offset.
//! Every view (reshape, permute, narrow, broadcast, squeeze) is a new `Layout` over the
//! same storage; nothing is copied.

use crate::{Error, Result, Shape};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    shape: Shape,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    pub fn contiguous(shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        let strides = shape.contiguous_strides();
        Layout { shape, strides, offset: 0 }
    }

    pub fn new(shape: Shape, strides: Vec<usize>, offset: usize) -> Self {
        assert_eq!(shape.rank(), strides.len(), "layout rank mismatch");
        Layout { shape, strides, offset }
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }
    pub fn elem_count(&self) -> usize {
        self.shape.elem_count()
    }

    /// Row-major and dense: the elements are `offset..offset + elem_count`.
    pub fn is_contiguous(&self) -> bool {
        let mut acc = 1;
        for (&d, &s) in self.dims().iter().zip(&self.strides).rev() {
            if d != 1 && s != acc {
                return false;
            }
            acc *= d;
        }
        true
    }

    /// One past the largest storage index this layout touches (0 when empty).
    pub fn max_offset(&self) -> usize {
        if self.elem_count() == 0 {
            // An empty view touches nothing; its offset may point past the end (a narrow of
            // length 0 at the end of an offset view).
            return 0;
        }
        self.offset + self.dims().iter().zip(&self.strides).map(|(&d, &s)| (d - 1) * s).sum::<usize>() + 1
    }

    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Layout> {
        let size = self.dims()[axis];
        if start + len > size {
            return Err(Error::IndexOutOfRange { op: "narrow", index: (start + len) as i64, size });
        }
        let mut dims = self.dims().to_vec();
        dims[axis] = len;
        Ok(Layout {
            shape: Shape::new(dims),
            strides: self.strides.clone(),
            offset: self.offset + start * self.strides[axis],
        })
    }

    pub fn permute(&self, perm: &[usize]) -> Result<Layout> {
        let rank = self.rank();
        let mut seen = vec![false; rank];
        if perm.len() != rank || perm.iter().any(|&p| p >= rank || std::mem::replace(&mut seen[p], true)) {
            return Err(Error::invalid("permute", format!("{perm:?} is not a permutation of {rank} axes")));
        }
        Ok(Layout {
            shape: Shape::new(perm.iter().map(|&p| self.dims()[p]).collect()),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        })
    }

    pub fn transpose(&self, a: usize, b: usize) -> Result<Layout> {
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Expand size-1 dims (and prepend new ones) with stride 0.
    pub fn broadcast_to(&self, shape: &Shape) -> Result<Layout> {
        let err = || Error::Broadcast { op: "broadcast_to", lhs: self.shape.clone(), rhs: shape.clone() };
        if shape.rank() < self.rank() {
            return Err(err());
        }
        let extra = shape.rank() - self.rank();
        let mut strides = vec![0; shape.rank()];
        for (i, &d) in shape.dims().iter().enumerate() {
            if i < extra {
                continue;
            }
            let (sd, ss) = (self.dims()[i - extra], self.strides[i - extra]);
            strides[i] = if sd == d {
                ss
            } else if sd == 1 {
                0
            } else {
                return Err(err());
            };
        }
        Ok(Layout { shape: shape.clone(), strides, offset: self.offset })
    }

    /// A layout with the new shape over the same elements, if the strides allow it
    /// (always for contiguous layouts; otherwise when each merged group is itself dense).
    pub fn reshape(&self, shape: &Shape) -> Option<Layout> {
        assert_eq!(shape.elem_count(), self.elem_count());
        if self.is_contiguous() {
            return Some(Layout { strides: shape.contiguous_strides(), shape: shape.clone(), offset: self.offset });
        }
        // Group old dims (ignoring size 1) into runs that are dense among themselves,
        // then split each run into the new dims it covers.
        let old: Vec<(usize, usize)> =
            self.dims().iter().zip(&self.strides).filter(|(&d, _)| d != 1).map(|(&d, &s)| (d, s)).collect();
        let new = shape.dims();
        let mut strides = vec![0; new.len()];
        let (mut oi, mut ni) = (0, 0);
        while ni < new.len() {
            if new[ni] == 1 {
                strides[ni] = 1;
                ni += 1;
                continue;
            }
            if oi >= old.len() {
                return None;
            }
            // Take old dims until their product is a multiple covered by new dims.
            let (mut old_prod, mut new_prod) = (old[oi].0, new[ni]);
            let (o_start, n_start) = (oi, ni);
            oi += 1;
            ni += 1;
            while old_prod != new_prod {
                if old_prod < new_prod {
                    if oi >= old.len() {
                        return None;
                    }
                    old_prod *= old[oi].0;
                    oi += 1;
                } else {
                    if ni >= new.len() {
                        return None;
                    }
                    new_prod *= new[ni];
                    ni += 1;
                }
            }
            // The merged old dims must be dense among themselves.
            for w in o_start + 1..oi {
                if old[w - 1].1 != old[w].1 * old[w].0 {
                    return None;
                }
            }
            let mut stride = old[oi - 1].1;
            for k in (n_start..ni).rev() {
                strides[k] = stride;
                stride *= new[k];
            }
        }
        if oi != old.len() {
            return None;
        }
        Some(Layout { shape: shape.clone(), strides, offset: self.offset })
    }

    pub fn squeeze(&self, axis: usize) -> Result<Layout> {
        if self.dims()[axis] != 1 {
            return Err(Error::invalid("squeeze", format!("axis {axis} has size {}, not 1", self.dims()[axis])));
        }
        let mut dims = self.dims().to_vec();
        let mut strides = self.strides.clone();
        dims.remove(axis);
        strides.remove(axis);
        Ok(Layout { shape: Shape::new(dims), strides, offset: self.offset })
    }

    /// Insert a size-1 axis at `axis` (which may equal the rank).
    pub fn unsqueeze(&self, axis: usize) -> Layout {
        let mut dims = self.dims().to_vec();
        let mut strides = self.strides.clone();
        let s = if axis < self.rank() { self.strides[axis] * self.dims()[axis] } else { 1 };
        dims.insert(axis, 1);
        strides.insert(axis, s);
        Layout { shape: Shape::new(dims), strides, offset: self.offset }
    }

    /// Storage index of every element, in row-major order.
    pub fn offsets(&self) -> StridedOffsets<'_> {
        StridedOffsets::new(self)
    }
}

/// Iterator over the storage offsets of a layout in row-major order.
pub struct StridedOffsets<'a> {
    layout: &'a Layout,
    index: Vec<usize>,
    next: Option<usize>,
}

impl<'a> StridedOffsets<'a> {
    fn new(layout: &'a Layout) -> Self {
        let next = if layout.elem_count() == 0 { None } else { Some(layout.offset) };
        StridedOffsets { layout, index: vec![0; layout.rank()], next }
    }
}

impl Iterator for StridedOffsets<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        let cur = self.next?;
        let dims = self.layout.dims();
        let strides = self.layout.strides();
        let mut off = cur;
        let mut d = dims.len();
        loop {
            if d == 0 {
                self.next = None;
                break;
            }
            d -= 1;
            self.index[d] += 1;
            off += strides[d];
            if self.index[d] < dims[d] {
                self.next = Some(off);
                break;
            }
            off -= strides[d] * dims[d];
            self.index[d] = 0;
        }
        Some(cur)
    }
}

/// Several layouts over one shape, with adjacent dims merged wherever every layout
/// allows it. Kernels then loop over `rows` of `dims.last()` elements with one inner
/// stride per operand, which keeps the inner loop simple enough to vectorise.
#[derive(Debug, Clone)]
pub struct Coalesced {
    pub dims: Vec<usize>,
    /// `strides[k]` are operand k's strides over `dims`.
    pub strides: Vec<Vec<usize>>,
    pub offsets: Vec<usize>,
}

impl Coalesced {
    pub fn new(layouts: &[&Layout]) -> Self {
        let shape = layouts[0].dims();
        debug_assert!(layouts.iter().all(|l| l.dims() == shape));
        let keep: Vec<usize> = (0..shape.len()).filter(|&i| shape[i] != 1).collect();
        let mut dims: Vec<usize> = Vec::new();
        let mut strides: Vec<Vec<usize>> = vec![Vec::new(); layouts.len()];
        for &i in &keep {
            let mergeable = !dims.is_empty()
                && layouts.iter().enumerate().all(|(k, l)| strides[k].last() == Some(&(l.strides()[i] * shape[i])));
            if mergeable {
                *dims.last_mut().unwrap() *= shape[i];
                for (k, l) in layouts.iter().enumerate() {
                    *strides[k].last_mut().unwrap() = l.strides()[i];
                }
            } else {
                dims.push(shape[i]);
                for (k, l) in layouts.iter().enumerate() {
                    strides[k].push(l.strides()[i]);
                }
            }
        }
        if dims.is_empty() {
            dims.push(1);
            for s in strides.iter_mut() {
                s.push(1);
            }
        }
        Coalesced { dims, strides, offsets: layouts.iter().map(|l| l.offset()).collect() }
    }

    /// Length of each row (the innermost merged dim).
    pub fn row_len(&self) -> usize {
        *self.dims.last().unwrap()
    }

    pub fn rows(&self) -> usize {
        self.dims[..self.dims.len() - 1].iter().product()
    }

    /// Inner stride of operand k.
    pub fn inner_stride(&self, k: usize) -> usize {
        *self.strides[k].last().unwrap()
    }

    /// Start offsets of operand k for each row index in `rows`, in order.
    pub fn row_starts(&self, k: usize, first_row: usize, count: usize) -> RowStarts<'_> {
        let outer = &self.dims[..self.dims.len() - 1];
        let strides = &self.strides[k][..self.dims.len() - 1];
        let mut index = vec![0; outer.len()];
        let mut rem = first_row;
        let mut off = self.offsets[k];
        for d in (0..outer.len()).rev() {
            index[d] = rem % outer[d];
            rem /= outer[d];
            off += index[d] * strides[d];
        }
        RowStarts { outer, strides, index, off, left: count }
    }
}

pub struct RowStarts<'a> {
    outer: &'a [usize],
    strides: &'a [usize],
    index: Vec<usize>,
    off: usize,
    left: usize,
}

impl Iterator for RowStarts<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let cur = self.off;
        for d in (0..self.outer.len()).rev() {
            self.index[d] += 1;
            self.off += self.strides[d];
            if self.index[d] < self.outer[d] {
                break;
            }
            self.off -= self.strides[d] * self.outer[d];
            self.index[d] = 0;
        }
        Some(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(l: &Layout) -> Vec<usize> {
        l.offsets().collect()
    }

    #[test]
    fn views_compute_offsets() {
        let l = Layout::contiguous([2, 3]);
        assert_eq!(offsets(&l.transpose(0, 1).unwrap()), vec![0, 3, 1, 4, 2, 5]);
        assert_eq!(offsets(&l.narrow(1, 1, 2).unwrap()), vec![1, 2, 4, 5]);
        let b = Layout::contiguous([3]).broadcast_to(&Shape::from([2, 3])).unwrap();
        assert_eq!(offsets(&b), vec![0, 1, 2, 0, 1, 2]);
        assert!(Layout::contiguous([2]).broadcast_to(&Shape::from([3])).is_err());
    }

    #[test]
    fn reshape_of_views() {
        let l = Layout::contiguous([4, 6]);
        // A narrowed row block stays dense along the merged dims.
        let n = l.narrow(0, 1, 2).unwrap();
        let r = n.reshape(&Shape::from([12])).unwrap();
        assert_eq!(offsets(&r), offsets(&n));
        // Splitting a strided dim works, merging a transposed pair does not.
        let t = l.transpose(0, 1).unwrap();
        let s = t.reshape(&Shape::from([2, 3, 4])).unwrap();
        assert_eq!(offsets(&s), offsets(&t));
        assert!(t.reshape(&Shape::from([24])).is_none());
    }

    #[test]
    fn coalesce_merges_dense_dims() {
        let a = Layout::contiguous([2, 3, 4]);
        let c = Coalesced::new(&[&a]);
        assert_eq!(c.dims, vec![24]);
        let b = Layout::contiguous([4]).broadcast_to(&Shape::from([2, 3, 4])).unwrap();
        let c = Coalesced::new(&[&a, &b]);
        assert_eq!(c.dims, vec![6, 4]);
        assert_eq!(c.strides[1], vec![0, 1]);
        let starts: Vec<usize> = c.row_starts(0, 2, 3).collect();
        assert_eq!(starts, vec![8, 12, 16]);
    }
}

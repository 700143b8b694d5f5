//! Shared pieces of the op tests: literal constructors, closeness checks, and proptest
//! strategies for random shapes, broadcast-compatible shape pairs and strided inputs.
//!
//! A strided input is a `Source`: a dense base array plus up to two view steps (permute,
//! narrow, broadcast) that turn it into a view of the wanted shape. `Source::values` reads
//! the view's elements by plain index arithmetic, independent of the layout code, so a test
//! can compare an op on the view with a reference computed from those values.
#![allow(dead_code)]

use plies::autodiff::{check_gradients, Array, DType, Device, Result, Tensor};
use plies::core::{Layout, View};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::Union;
use std::ops::RangeInclusive;

pub const CPU: Device = Device::Cpu;

// === Literals ===

pub fn arr(v: &[f64], shape: &[usize]) -> Array {
    Array::from_slice(v, shape, CPU).unwrap()
}

pub fn arr32(v: &[f32], shape: &[usize]) -> Array {
    Array::from_slice(v, shape, CPU).unwrap()
}

pub fn idx(v: &[i32], shape: &[usize]) -> Array {
    Array::from_slice(v, shape, CPU).unwrap()
}

/// A constant f64 tensor.
pub fn ten(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::new(arr(v, shape))
}

/// A constant i32 tensor.
pub fn iten(v: &[i32], shape: &[usize]) -> Tensor {
    Tensor::new(idx(v, shape))
}

pub fn vals(a: &Array) -> Vec<f64> {
    a.to_vec::<f64>().unwrap()
}

pub fn tvals(t: &Tensor) -> Vec<f64> {
    t.to_vec::<f64>()
}

/// Element-wise `|got - want| <= tol * (1 + |want|)`; NaNs must match NaNs.
#[track_caller]
pub fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "length: got {got:?}, want {want:?}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() { g.is_nan() } else { (g - w).abs() <= tol * (1.0 + w.abs()) };
        assert!(ok, "element {i}: got {g}, want {w}\n got  {got:?}\n want {want:?}");
    }
}

/// The error message of a failed op.
#[track_caller]
pub fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
    r.expect_err("the op should have failed").to_string()
}

/// Finite-difference check of `f` at `inputs` with the default tolerances, and of `f`
/// followed by a full sum, whose backward hands the op a broadcast (stride-0) upstream
/// gradient. Panics naming the op on failure (proptest then shrinks the case).
#[track_caller]
pub fn gradcheck_f64(op: &str, f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Array]) {
    if let Err(e) = check_gradients(&f, inputs) {
        panic!("{op}: {e}");
    }
    if let Err(e) = check_gradients(|t| f(t)?.try_sum_all(), inputs) {
        panic!("{op} then sum: {e}");
    }
}

/// `gradcheck_f64`, then the same op in f32 on the same layouts against f64 (forward and
/// backward, relative tolerance 1e-4).
#[track_caller]
pub fn gradcheck(op: &str, f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Array]) {
    gradcheck_f64(op, &f, inputs);
    let inputs32: Vec<Array> =
        inputs.iter().map(|a| if a.dtype().is_float() { cast_keep_layout(a, DType::F32) } else { a.clone() }).collect();
    f32_matches_f64(op, f, &inputs32, 1e-4);
}

/// `a` converted to `dtype` with its layout (strides, offset) kept: the whole storage is
/// cast and viewed the same way.
pub fn cast_keep_layout(a: &Array, dtype: DType) -> Array {
    let n = a.storage().len();
    let whole = Layout::contiguous([n]);
    let s = a.backend().cast(View::new(a.storage().as_ref(), &whole), dtype).unwrap();
    Array::from_storage(s, [n]).with_layout(a.layout().clone())
}

/// The f32 kernels agree with the f64 ones: `f` runs on `inputs32` (f32 or i32, strided as
/// given) and on the same values in f64; outputs and gradients (for upstream weights in
/// [-0.5, 0.5]) must match within `tol`.
#[track_caller]
pub fn f32_matches_f64(op: &str, f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs32: &[Array], tol: f64) {
    let run = |dtype: DType| -> Vec<Vec<f64>> {
        let ts: Vec<Tensor> =
            inputs32
                .iter()
                .map(|a| {
                    if a.dtype().is_float() {
                        Tensor::param(a.to_dtype(dtype).unwrap())
                    } else {
                        Tensor::new(a.clone())
                    }
                })
                .collect();
        let y = f(&ts).unwrap();
        let w: Vec<f64> = (0..y.elem_count()).map(|i| ((i * 7) % 5) as f64 / 4.0 - 0.5).collect();
        y.backward_with(Array::from_vec(w, y.shape(), CPU).unwrap().to_dtype(y.dtype()).unwrap()).unwrap();
        let mut out = vec![tvals(&y)];
        out.extend(ts.iter().filter(|t| t.requires_grad()).map(|t| t.grad().map_or(vec![], |g| vals(&g))));
        out
    };
    for (i, (got, want)) in run(DType::F32).iter().zip(run(DType::F64)).enumerate() {
        let what = if i == 0 { "output".to_string() } else { format!("gradient of input {}", i - 1) };
        let ok = got.len() == want.len()
            && got.iter().zip(&want).all(|(g, w)| (g - w).abs() <= tol * (1.0 + w.abs()) || (g.is_nan() && w.is_nan()));
        assert!(ok, "{op}: f32 {what} differs from f64\n f32 {got:?}\n f64 {want:?}");
    }
}

// === Index arithmetic (the reference for views and broadcasting) ===

pub fn count(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// Row-major multi-index of flat position `i`.
pub fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        idx[d] = i % dims[d];
        i /= dims[d];
    }
    idx
}

pub fn ravel(idx: &[usize], dims: &[usize]) -> usize {
    idx.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// Flat position in `dims` of the element that broadcasting to `out` reads at `out_idx`.
pub fn broadcast_pos(out_idx: &[usize], dims: &[usize]) -> usize {
    let lead = out_idx.len() - dims.len();
    let idx: Vec<usize> = dims.iter().enumerate().map(|(j, &d)| if d == 1 { 0 } else { out_idx[lead + j] }).collect();
    ravel(&idx, dims)
}

/// numpy broadcast of two shapes (the test's own reference, not the library's).
pub fn broadcast_dims(a: &[usize], b: &[usize]) -> Vec<usize> {
    let r = a.len().max(b.len());
    let get = |s: &[usize], i: usize| if i + s.len() >= r { s[i + s.len() - r] } else { 1 };
    (0..r).map(|i| get(a, i).max(get(b, i))).collect()
}

/// `values` (row-major in `dims`) broadcast to `out`.
pub fn broadcast_values(values: &[f64], dims: &[usize], out: &[usize]) -> Vec<f64> {
    (0..count(out)).map(|i| values[broadcast_pos(&unravel(i, out), dims)]).collect()
}

// === Shapes ===

/// A dimension in 1..=5, size 1 a fifth of the time (the broadcast and squeeze edge).
pub fn dim() -> BoxedStrategy<usize> {
    prop_oneof![1 => Just(1usize), 4 => 2..=5usize].boxed()
}

/// How many leading dims a broadcast operand drops: usually none.
fn lead(rank: usize) -> BoxedStrategy<usize> {
    prop_oneof![3 => Just(0usize), 1 => 0..=rank].boxed()
}

pub fn shape(ranks: RangeInclusive<usize>) -> BoxedStrategy<Vec<usize>> {
    ranks.prop_flat_map(|r| vec(dim(), r)).boxed()
}

/// `n` shapes that broadcast together: each is a common output shape with some leading
/// dims dropped and some dims set to 1.
pub fn broadcast_shapes(n: usize, ranks: RangeInclusive<usize>) -> BoxedStrategy<Vec<Vec<usize>>> {
    shape(ranks)
        .prop_flat_map(move |out| {
            let r = out.len();
            (Just(out), vec((lead(r), vec(prop::bool::weighted(0.3), r)), n))
        })
        .prop_map(|(out, sides)| {
            sides
                .iter()
                .map(|(lead, ones)| (*lead..out.len()).map(|i| if ones[i] { 1 } else { out[i] }).collect())
                .collect()
        })
        .boxed()
}

/// A shape that broadcasts to `dims` (leading dims dropped, some dims set to 1).
pub fn broadcastable_to(dims: Vec<usize>) -> BoxedStrategy<Vec<usize>> {
    let r = dims.len();
    (lead(r), vec(prop::bool::weighted(0.3), r))
        .prop_map(move |(lead, ones)| (lead..r).map(|i| if ones[i] { 1 } else { dims[i] }).collect())
        .boxed()
}

pub fn broadcast_pair(ranks: RangeInclusive<usize>) -> BoxedStrategy<(Vec<usize>, Vec<usize>)> {
    broadcast_shapes(2, ranks).prop_map(|v| (v[0].clone(), v[1].clone())).boxed()
}

// === Strided sources ===

/// One view step, applied to an array of the step's input dims.
#[derive(Clone, Debug)]
pub enum Step {
    Plain,
    /// `permute(perm)`.
    Permute(Vec<usize>),
    /// `narrow(axis, start, out[axis])` of an input `extra` longer along `axis`.
    Narrow {
        axis: usize,
        start: usize,
        extra: usize,
    },
    /// `broadcast_to(out)` of an input with `lead` fewer dims and `ones` dims set to 1.
    Broadcast {
        lead: usize,
        ones: Vec<bool>,
    },
}

impl Step {
    /// The dims this step must be given to produce `out`.
    fn input_dims(&self, out: &[usize]) -> Vec<usize> {
        match self {
            Step::Plain => out.to_vec(),
            Step::Permute(perm) => {
                let mut d = vec![0; out.len()];
                for (i, &p) in perm.iter().enumerate() {
                    d[p] = out[i];
                }
                d
            }
            Step::Narrow { axis, extra, .. } => {
                let mut d = out.to_vec();
                d[*axis] += extra;
                d
            }
            Step::Broadcast { lead, ones } => (*lead..out.len()).map(|i| if ones[i] { 1 } else { out[i] }).collect(),
        }
    }

    /// The input index this step reads at output index `o`.
    fn input_index(&self, o: &[usize], input: &[usize]) -> Vec<usize> {
        match self {
            Step::Plain => o.to_vec(),
            Step::Permute(perm) => {
                let mut i = vec![0; o.len()];
                for (k, &p) in perm.iter().enumerate() {
                    i[p] = o[k];
                }
                i
            }
            Step::Narrow { axis, start, .. } => {
                let mut i = o.to_vec();
                i[*axis] += start;
                i
            }
            Step::Broadcast { lead, .. } => {
                (0..input.len()).map(|j| if input[j] == 1 { 0 } else { o[lead + j] }).collect()
            }
        }
    }

    fn apply(&self, a: &Array, out: &[usize]) -> Array {
        match self {
            Step::Plain => a.clone(),
            Step::Permute(perm) => a.permute(perm).unwrap(),
            Step::Narrow { axis, start, .. } => a.narrow(*axis, *start, out[*axis]).unwrap(),
            Step::Broadcast { .. } => a.broadcast_to(out).unwrap(),
        }
    }
}

fn step(out: &[usize], allow_broadcast: bool) -> BoxedStrategy<Step> {
    let r = out.len();
    let mut options = vec![Just(Step::Plain).boxed()];
    if r >= 2 {
        options.push(Just((0..r).collect::<Vec<_>>()).prop_shuffle().prop_map(Step::Permute).boxed());
    }
    if r >= 1 {
        options.push(
            (0..r, 1..=3usize)
                .prop_flat_map(|(axis, extra)| (Just(axis), 0..=extra, Just(extra)))
                .prop_map(|(axis, start, extra)| Step::Narrow { axis, start, extra })
                .boxed(),
        );
    }
    if r >= 1 && allow_broadcast {
        options.push(
            (lead(r), vec(prop::bool::weighted(0.5), r))
                .prop_map(|(lead, ones)| Step::Broadcast { lead, ones })
                .boxed(),
        );
    }
    Union::new(options).boxed()
}

/// A view of shape `dims` over a dense base array.
#[derive(Clone, Debug)]
pub struct Source {
    pub dims: Vec<usize>,
    /// Applied first to last; `mid` is the shape between them.
    pub steps: [Step; 2],
    pub mid: Vec<usize>,
    pub base_dims: Vec<usize>,
    pub base: Vec<f64>,
}

impl Source {
    /// The view in f64.
    pub fn array(&self) -> Array {
        self.array_as(DType::F64)
    }

    /// The view in `dtype` (the base is converted first, so the view stays strided).
    pub fn array_as(&self, dtype: DType) -> Array {
        let base = arr(&self.base, &self.base_dims).to_dtype(dtype).unwrap();
        let mid = self.steps[0].apply(&base, &self.mid);
        self.steps[1].apply(&mid, &self.dims)
    }

    /// The view's elements in row-major order, by index arithmetic alone.
    pub fn values(&self) -> Vec<f64> {
        (0..count(&self.dims))
            .map(|i| {
                let o = unravel(i, &self.dims);
                let m = self.steps[1].input_index(&o, &self.mid);
                let b = self.steps[0].input_index(&m, &self.base_dims);
                self.base[ravel(&b, &self.base_dims)]
            })
            .collect()
    }

    /// The same view over base values mapped by `f`.
    pub fn map(&self, f: impl Fn(f64) -> f64) -> Source {
        Source { base: self.base.iter().map(|&v| f(v)).collect(), ..self.clone() }
    }

    /// The same view over pairwise distinct base values spread over [-2, 2) (in the order of
    /// the original values), so a view without broadcast has no ties.
    pub fn distinct(&self) -> Source {
        let n = self.base.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| self.base[a].total_cmp(&self.base[b]));
        let mut base = vec![0.0; n];
        for (rank, &i) in order.iter().enumerate() {
            base[i] = -2.0 + 4.0 * rank as f64 / n as f64;
        }
        Source { base, ..self.clone() }
    }

    pub fn is_broadcast(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::Broadcast { .. }))
    }
}

/// A strided view of shape `dims` with base values uniform in [-1, 1].
pub fn source(dims: Vec<usize>, allow_broadcast: bool) -> BoxedStrategy<Source> {
    step(&dims, allow_broadcast)
        .prop_flat_map(move |last| {
            let mid = last.input_dims(&dims);
            let first = step(&mid, allow_broadcast);
            (Just(dims.clone()), Just(last), Just(mid), first)
        })
        .prop_flat_map(|(dims, last, mid, first)| {
            let base_dims = first.input_dims(&mid);
            let n = count(&base_dims);
            (Just(dims), Just([first, last]), Just(mid), Just(base_dims), vec(-1.0f64..1.0, n))
        })
        .prop_map(|(dims, steps, mid, base_dims, base)| Source { dims, steps, mid, base_dims, base })
        .boxed()
}

/// A strided view of a random shape with rank in `ranks`.
pub fn any_source(ranks: RangeInclusive<usize>, allow_broadcast: bool) -> BoxedStrategy<Source> {
    shape(ranks).prop_flat_map(move |d| source(d, allow_broadcast)).boxed()
}

// === Value domains (applied to base values in [-1, 1]) ===

/// Pushes `x` at least `gap` away from each of `points` (points more than 2 gap apart),
/// keeping inputs off the kinks of piecewise ops.
pub fn avoid(x: f64, points: &[f64], gap: f64) -> f64 {
    let mut x = x;
    for &p in points {
        if (x - p).abs() < gap {
            x = if x >= p { p + gap } else { p - gap };
        }
    }
    x
}

/// Values on two interleaved lattices: parity 0 near multiples of 0.5, parity 1 near odd
/// multiples of 0.25, each within 0.04; any value of one is at least 0.17 from any of the
/// other, so `maximum`/`minimum` of the two never ties, whatever the broadcasting.
pub fn lattice(u: f64, parity: u8) -> f64 {
    (2.0 * (u * 6.0).round() + parity as f64) * 0.25 + 0.04 * u
}

/// A value in [0.5, 3.5] (domain of log, sqrt, rsqrt, recip, powf, pow's base).
pub fn positive(u: f64) -> f64 {
    2.0 + 1.5 * u
}

/// A value with magnitude in [0.5, 2.5] and either sign (a safe divisor).
pub fn nonzero(u: f64) -> f64 {
    if u >= 0.0 {
        0.5 + 2.0 * u
    } else {
        -0.5 + 2.0 * u
    }
}

//! Error messages people can act on: a shape mismatch names the op and both shapes, an axis
//! out of range the axis and the rank, an index out of range the index and the size; dtype
//! and device mismatches name both sides. No op broadcasts where the user did not ask.

mod common;

use common::*;
use plies::autodiff::{rng::Rng, Array, CrossEntropyOpts, DType, Device, Error, Reduction, Result, Tensor};
use plies::core::backend::{register_gpu, NormGradInputs, NormGrads, NormOut, StorageBox};
use plies::core::cpu::{CpuBackend, CpuStorage};
use plies::core::{
    AdamWStep, Backend, BinaryOp, Distribution, Layout, MemoryStats, NormKind, ReduceOp, Storage, UnaryOp, View,
};
use std::any::Any;
use std::sync::Arc;

fn t(dims: &[usize]) -> Tensor {
    Tensor::new(Array::ones(dims, DType::F64, CPU).unwrap())
}

fn t32(dims: &[usize]) -> Tensor {
    Tensor::new(Array::ones(dims, DType::F32, CPU).unwrap())
}

#[test]
fn shape_mismatches_name_the_op_and_both_shapes() {
    let (a, b) = (t(&[2, 3]), t(&[4]));
    type Bin = fn(&Tensor, &Tensor) -> Result<Tensor>;
    let ops: [(&str, Bin); 12] = [
        ("add", |a, b| a.try_add(b)),
        ("sub", |a, b| a.try_sub(b)),
        ("mul", |a, b| a.try_mul(b)),
        ("div", |a, b| a.try_div(b)),
        ("pow", |a, b| a.try_pow(b)),
        ("maximum", |a, b| a.try_maximum(b)),
        ("minimum", |a, b| a.try_minimum(b)),
        ("lt", |a, b| a.try_compare(BinaryOp::Lt, b)),
        ("eq", |a, b| a.try_compare(BinaryOp::Eq, b)),
        ("ge", |a, b| a.try_compare(BinaryOp::Ge, b)),
        ("where", |a, b| Tensor::try_where_cond(a, a, b)),
        ("where", |a, b| Tensor::try_where_cond(a, b, a)),
    ];
    for (name, op) in ops {
        assert_eq!(err(op(&a, &b)), format!("cannot broadcast shapes in {name}: lhs [2, 3], rhs [4]"));
    }
    assert_eq!(err(Tensor::try_where_cond(&b, &a, &a)), "cannot broadcast shapes in where: lhs [4], rhs [2, 3]");
    // mse and masked_fill's mask: same-shape and broadcast-to-self contracts.
    assert_eq!(err(a.try_mse(&b)), "shape mismatch in mse: lhs [2, 3], rhs [4]");
    assert_eq!(err(t(&[3]).try_mse(&t(&[1, 3]))), "shape mismatch in mse: lhs [3], rhs [1, 3]");
    assert_eq!(
        err(a.try_masked_fill(&iten(&[0; 4], &[4]), 0.0)),
        "cannot broadcast shapes in where: lhs [4], rhs [2, 3]"
    );
    assert_eq!(err(t(&[2, 3]).try_matmul(&t(&[4, 5]))), "shape mismatch in matmul: lhs [2, 3], rhs [4, 5]");
    assert_eq!(err(t(&[2, 2, 3]).try_matmul(&t(&[3, 3, 4]))), "shape mismatch in matmul: lhs [2, 2, 3], rhs [3, 3, 4]");
    assert_eq!(err(Tensor::try_cat(&[&t(&[2, 3]), &t(&[2, 4])], 0)), "shape mismatch in cat: lhs [2, 3], rhs [2, 4]");
    assert_eq!(err(Tensor::try_cat(&[&t(&[2, 3]), &t(&[3])], 0)), "shape mismatch in cat: lhs [2, 3], rhs [3]");
    assert_eq!(err(Tensor::try_stack(&[&t(&[2]), &t(&[3])], 0)), "shape mismatch in stack: lhs [2], rhs [3]");
    assert_eq!(err(t(&[2, 3]).try_reshape([4])), "cannot reshape shape [2, 3] (6 elements) into [4] (4 elements)");
    assert_eq!(err(t(&[2]).try_broadcast_to([3])), "cannot broadcast shapes in broadcast_to: lhs [2], rhs [3]");
    assert_eq!(err(t(&[2, 3]).try_broadcast_to([3])), "cannot broadcast shapes in broadcast_to: lhs [2, 3], rhs [3]");
    let w = t(&[4]);
    assert_eq!(
        err(t(&[2, 3]).try_layer_norm(Some(&w), None, 1e-5)),
        "shape mismatch in layer_norm: lhs [2, 3], rhs [4]"
    );
    assert_eq!(
        err(t(&[2, 3]).try_layer_norm(None, Some(&w), 1e-5)),
        "shape mismatch in layer_norm: lhs [2, 3], rhs [4]"
    );
    assert_eq!(err(t(&[2, 3]).try_rms_norm(Some(&w), 1e-5)), "shape mismatch in rms_norm: lhs [2, 3], rhs [4]");
    // Targets must match the logits' rows exactly; no broadcasting.
    let ce =
        |x: &[usize], y: &[usize]| err(t(x).try_cross_entropy(&Tensor::new(Array::zeros(y, DType::I32, CPU).unwrap())));
    assert_eq!(ce(&[2, 3], &[3]), "shape mismatch in cross_entropy: lhs [2, 3], rhs [3]");
    assert_eq!(ce(&[2, 3], &[1]), "shape mismatch in cross_entropy: lhs [2, 3], rhs [1]");
    assert_eq!(ce(&[2, 3], &[2, 1]), "shape mismatch in cross_entropy: lhs [2, 3], rhs [2, 1]");
    let i = iten(&[0, 1], &[2]);
    assert_eq!(
        err(t(&[3, 2]).try_index_add(0, &i, &t(&[3, 2]))),
        "shape mismatch in index_add: lhs [2, 2], rhs [3, 2]"
    );
    assert_eq!(err(t(&[3, 2]).try_gather(0, &i)), "shape mismatch in gather: lhs [3, 2], rhs [2]");
    let i2 = iten(&[0, 1], &[1, 2]);
    assert_eq!(
        err(t(&[3, 2]).try_scatter_add(0, &i2, &t(&[2, 1]))),
        "shape mismatch in scatter_add: lhs [1, 2], rhs [2, 1]"
    );
    assert_eq!(
        err(t(&[3, 2]).try_gather(0, &iten(&[0; 3], &[1, 3]))),
        "shape mismatch in gather: lhs [3, 2], rhs [1, 3]"
    );
    // Autodiff entry points.
    let p = Tensor::param(Array::ones([2, 3], DType::F64, CPU).unwrap());
    let y = p.mul_scalar(2.0);
    let e = err(y.backward_with(Array::ones([3, 2], DType::F64, CPU).unwrap()));
    assert_eq!(e, "shape mismatch in backward: lhs [2, 3], rhs [3, 2]");
    assert_eq!(
        err(p.set_value(Array::ones([3], DType::F64, CPU).unwrap())),
        "shape mismatch in set_value: lhs [2, 3], rhs [3]"
    );
    assert_eq!(
        err(p.set_value(Array::ones([2, 3], DType::F32, CPU).unwrap())),
        "dtype mismatch in set_value: lhs f64, rhs f32"
    );
    assert!(err(y.backward()).contains("needs a one-element tensor, got shape [2, 3]"));
    // The upstream gradient must have the tensor's dtype too, or a leaf would silently
    // receive a gradient of another dtype.
    let q = Tensor::param(Array::ones([2], DType::F64, CPU).unwrap());
    let e = err(q.add(&q).backward_with(Array::ones([2], DType::F32, CPU).unwrap()));
    assert_eq!(e, "dtype mismatch in backward: lhs f64, rhs f32");
    assert!(q.grad().is_none());
}

#[test]
fn axes_out_of_range_name_the_axis_and_rank() {
    let x = t(&[2, 3]);
    let cases: Vec<(&str, Result<Tensor>)> = vec![
        ("sum", x.try_sum(2, false)),
        ("sum", x.try_sum(-3, true)),
        ("mean", x.try_mean([0, 5], false)),
        ("max", x.try_max(2, false)),
        ("min", x.try_min(-3, false)),
        ("var", x.try_var(2, false, 1)),
        ("argmax", x.try_argmax(2, false)),
        ("argmin", x.try_argmin(-3, false)),
        ("softmax", x.try_softmax(2)),
        ("log_softmax", x.try_log_softmax(-3)),
        ("narrow", x.try_narrow(2, 0, 1)),
        ("transpose", x.try_transpose(0, 2)),
        ("squeeze", x.try_squeeze(2)),
        ("flatten", x.try_flatten(0, 2)),
        ("cat", Tensor::try_cat(&[&x, &x], 2)),
        ("gather", x.try_gather(2, &iten(&[0], &[1, 1]))),
        ("index_select", x.try_index_select(2, &iten(&[0], &[1]))),
        ("index_add", x.try_index_add(-3, &iten(&[0], &[1]), &t(&[1, 3]))),
        ("scatter_add", x.try_scatter_add(2, &iten(&[0], &[1, 1]), &t(&[1, 1]))),
    ];
    for (name, r) in cases {
        let e = err(r);
        assert!(
            e.starts_with("axis ") && e.ends_with(&format!("out of range in {name} for a tensor of rank 2")),
            "{name}: {e}"
        );
    }
    assert_eq!(err(x.try_sum(2, false)), "axis 2 out of range in sum for a tensor of rank 2");
    assert_eq!(err(x.try_sum(-3, false)), "axis -3 out of range in sum for a tensor of rank 2");
    // unsqueeze and stack insert an axis: rank + 1 positions.
    assert_eq!(err(x.try_unsqueeze(4)), "axis 4 out of range in unsqueeze for a tensor of rank 3");
    assert_eq!(err(Tensor::try_stack(&[&x], -4)), "axis -4 out of range in stack for a tensor of rank 3");
    assert_eq!(err(x.try_split(&[1, 1], 2).map(|_| ())), "axis 2 out of range in split for a tensor of rank 2");
    assert_eq!(err(x.try_chunk(2, 2).map(|_| ())), "axis 2 out of range in chunk for a tensor of rank 2");
}

#[test]
fn indices_out_of_range_name_the_index_and_size() {
    let x = t(&[4, 3]);
    assert_eq!(err(x.try_narrow(0, 3, 2)), "index 5 out of range in narrow for a dimension of size 4");
    assert_eq!(err(x.try_narrow(1, 4, 0)), "index 4 out of range in narrow for a dimension of size 3");
    assert_eq!(
        err(x.try_index_select(0, &iten(&[0, 4], &[2]))),
        "index 4 out of range in index_select for a dimension of size 4"
    );
    assert_eq!(
        err(x.try_embedding(&iten(&[-1], &[1]))),
        "index -1 out of range in index_select for a dimension of size 4"
    );
    assert_eq!(
        err(x.try_gather(1, &iten(&[0, 3], &[1, 2]))),
        "index 3 out of range in gather for a dimension of size 3"
    );
    let ce = |target: i32, opts: CrossEntropyOpts| {
        err(t(&[2, 3]).try_cross_entropy_with(&iten(&[0, target], &[2]), opts, Reduction::Mean))
    };
    assert_eq!(ce(3, CrossEntropyOpts::default()), "index 3 out of range in cross_entropy for a dimension of size 3");
    assert_eq!(ce(-1, CrossEntropyOpts::default()), "index -1 out of range in cross_entropy for a dimension of size 3");
    // -100 is only special while it is the ignore_index.
    let opts = CrossEntropyOpts { ignore_index: -1, ..Default::default() };
    assert_eq!(ce(-100, opts), "index -100 out of range in cross_entropy for a dimension of size 3");
    // The op checks its options, whichever API reaches it.
    let smooth = CrossEntropyOpts { label_smoothing: 1.5, ..Default::default() };
    assert!(ce(0, smooth).contains("label_smoothing must be in [0, 1], got 1.5"), "{}", ce(0, smooth));
    let nn_opts = plies::nn::loss::CrossEntropy { label_smoothing: -0.5, ..Default::default() };
    let e = err(plies::nn::loss::cross_entropy(&t(&[2, 3]), &iten(&[0, 1], &[2]), nn_opts));
    assert!(e.contains("label_smoothing must be in [0, 1], got -0.5"), "{e}");
}

#[test]
fn dtype_mismatches_name_both_dtypes() {
    let (a, b) = (t32(&[2]), t(&[2]));
    assert_eq!(err(a.try_add(&b)), "dtype mismatch in add: lhs f32, rhs f64");
    assert_eq!(err(a.try_maximum(&b)), "dtype mismatch in maximum: lhs f32, rhs f64");
    assert_eq!(err(a.try_matmul(&b)), "dtype mismatch in matmul: lhs f32, rhs f64");
    assert_eq!(err(Tensor::try_cat(&[&a, &b], 0)), "dtype mismatch in cat: lhs f32, rhs f64");
    assert_eq!(err(Tensor::try_where_cond(&a, &a, &b)), "dtype mismatch in where: lhs f32, rhs f64");
    assert_eq!(
        err(t32(&[2, 2]).try_layer_norm(Some(&b), None, 1e-5)),
        "dtype mismatch in layer_norm: lhs f32, rhs f64"
    );
    let i = iten(&[0, 1], &[2]);
    assert_eq!(err(t32(&[2, 2]).try_index_add(0, &i, &t(&[2, 2]))), "dtype mismatch in index_add: lhs f32, rhs f64");
    assert_eq!(
        err(t32(&[2, 2]).try_scatter_add(0, &iten(&[0, 1], &[1, 2]), &t(&[1, 2]))),
        "dtype mismatch in scatter_add: lhs f32, rhs f64"
    );
    // Float-only ops reject i32; index arguments must be i32.
    let n = iten(&[1, 2], &[2]);
    assert_eq!(err(n.try_exp()), "exp does not support dtype i32 on cpu");
    assert_eq!(err(n.try_softmax(0)), "softmax does not support dtype i32 on cpu");
    assert_eq!(err(n.try_matmul(&n)), "matmul does not support dtype i32 on cpu");
    assert_eq!(err(n.try_mean(0, false)), "mean does not support dtype i32 on cpu");
    assert_eq!(
        err(t(&[2, 2]).try_index_select(0, &t(&[2]))),
        "invalid arguments to index_select: indices must have dtype i32, got f64"
    );
    assert_eq!(
        err(t(&[2, 2]).try_gather(0, &t(&[1, 2]))),
        "invalid arguments to gather: indices must have dtype i32, got f64"
    );
    assert_eq!(
        err(t(&[2, 2]).try_cross_entropy(&t(&[2]))),
        "invalid arguments to cross_entropy: indices must have dtype i32, got f64"
    );
    assert_eq!(
        err(Tensor::try_random([2], Distribution::Normal { mean: 0.0, std: 1.0 }, &mut Rng::new(0), DType::I32, CPU)),
        "random does not support dtype i32 on cpu"
    );
}

#[test]
fn invalid_arguments_are_errors_not_panics() {
    let x = t(&[2, 3]);
    assert_eq!(err(x.try_permute(&[0, 0])), "invalid arguments to permute: [0, 0] is not a permutation of 2 axes");
    assert_eq!(err(x.try_permute(&[0])), "invalid arguments to permute: [0] is not a permutation of 2 axes");
    assert_eq!(err(x.try_squeeze(1)), "invalid arguments to squeeze: axis 1 has size 3, not 1");
    assert_eq!(
        err(x.try_split(&[1, 1], 1).map(|_| ())),
        "invalid arguments to split: sizes [1, 1] do not add up to 3 (axis 1 of shape [2, 3])"
    );
    assert_eq!(err(x.try_chunk(0, 1).map(|_| ())), "invalid arguments to chunk: number of chunks must be positive");
    assert_eq!(err(Tensor::try_cat(&[], 0)), "invalid arguments to cat: needs at least one tensor");
    assert_eq!(err(Tensor::try_stack(&[], 0)), "invalid arguments to stack: needs at least one tensor");
    assert_eq!(err(x.try_reshape_infer(&[-1, -1])), "invalid arguments to reshape: only one dimension can be -1");
    assert_eq!(err(x.try_flatten(1, 0)), "invalid arguments to flatten: start axis 1 is after end axis 0");
    assert_eq!(err(x.try_sum([0, -2], false)), "invalid arguments to sum: axis repeated in [0, 0]");
    assert_eq!(err(t(&[3]).try_t()), "invalid arguments to t: needs rank >= 2, got shape [3]");
    assert_eq!(err(t(&[]).try_softmax(0)), "axis 0 out of range in softmax for a tensor of rank 0");
    assert_eq!(err(x.try_dropout(1.0, &mut Rng::new(0))), "invalid arguments to dropout: p must be in [0, 1), got 1");
    assert_eq!(
        err(x.try_dropout(-0.1, &mut Rng::new(0))),
        "invalid arguments to dropout: p must be in [0, 1), got -0.1"
    );
    assert_eq!(
        err(Tensor::try_from_vec(vec![1.0f64; 5], [2, 3], CPU)),
        "invalid arguments to from_vec: 5 elements given for shape [2, 3] (6 elements)"
    );
    assert_eq!(
        err(t(&[2, 3, 4]).try_embedding(&iten(&[0], &[1]))),
        "invalid arguments to embedding: table must be [vocab, dim], got [2, 3, 4]"
    );
    let e = err(x.try_index_select(0, &iten(&[0, 1], &[1, 2])));
    assert_eq!(e, "invalid arguments to index_select: index must be 1-d, got shape [1, 2]");
    // The panicking twins panic with the same message.
    let p = std::panic::catch_unwind(|| t(&[2, 3]).matmul(&t(&[4, 5]))).unwrap_err();
    assert_eq!(p.downcast_ref::<String>().unwrap(), "shape mismatch in matmul: lhs [2, 3], rhs [4, 5]");
}

// === Device mismatch, through a stand-in GPU backend ===

/// A storage that claims to live on `gpu:0` and holds its elements on the host. Ops check
/// devices before they reach a backend, so every kernel here may simply fail.
#[derive(Debug)]
struct FakeGpuStorage(CpuStorage);

#[derive(Debug)]
struct FakeGpu;

impl Storage for FakeGpuStorage {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn dtype(&self) -> DType {
        self.0.dtype()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(FakeGpu)
    }
}

fn unreachable_kernel<T>() -> Result<T> {
    Err(Error::Backend { device: Device::Gpu(0), msg: "a kernel ran on mismatched devices".into() })
}

impl Backend for FakeGpu {
    fn device(&self) -> Device {
        Device::Gpu(0)
    }
    fn name(&self) -> String {
        "fake gpu".into()
    }
    fn memory(&self) -> MemoryStats {
        MemoryStats::default()
    }
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    fn upload(&self, data: &CpuStorage) -> Result<StorageBox> {
        Ok(Box::new(FakeGpuStorage(data.clone())))
    }
    fn full(&self, len: usize, dtype: DType, value: f64) -> Result<StorageBox> {
        let s = CpuBackend::shared().full(len, dtype, value)?;
        Ok(Box::new(FakeGpuStorage(s.as_any().downcast_ref::<CpuStorage>().unwrap().clone())))
    }
    fn random(&self, _: usize, _: DType, _: Distribution, _: u64) -> Result<StorageBox> {
        unreachable_kernel()
    }
    fn download(&self, x: View) -> Result<CpuStorage> {
        let inner = &x.storage.as_any().downcast_ref::<FakeGpuStorage>().unwrap().0;
        CpuBackend::shared().download(View::new(inner, x.layout))
    }
    fn copy(&self, _: View) -> Result<StorageBox> {
        unreachable_kernel()
    }
    fn copy_into(&self, _: View, _: &mut dyn Storage, _: &Layout) -> Result<()> {
        unreachable_kernel()
    }
    fn cast(&self, _: View, _: DType) -> Result<StorageBox> {
        unreachable_kernel()
    }
    fn unary(&self, _: UnaryOp, _: View) -> Result<StorageBox> {
        unreachable_kernel()
    }
    fn unary_grad(&self, _: UnaryOp, _: View, _: View) -> Result<StorageBox> {
        unreachable_kernel()
    }
    fn binary(&self, _: BinaryOp, _: View, _: View) -> Result<StorageBox> {
        unreachable_kernel()
    }
    fn where_cond(&self, _: View, _: View, _: View) -> Result<StorageBox> {
        unreachable_kernel()
    }
    fn reduce(&self, _: ReduceOp, _: View, _: &[usize]) -> Result<StorageBox> {
        unreachable_kernel()
    }
    fn matmul(&self, _: View, _: View) -> Result<StorageBox> {
        unreachable_kernel()
    }
    fn softmax(&self, _: View, _: bool) -> Result<StorageBox> {
        unreachable_kernel()
    }
    fn softmax_grad(&self, _: View, _: View, _: bool) -> Result<StorageBox> {
        unreachable_kernel()
    }
    fn norm(&self, _: NormKind, _: View, _: Option<View>, _: Option<View>, _: f64) -> Result<NormOut> {
        unreachable_kernel()
    }
    fn norm_grad(&self, _: NormGradInputs<'_>) -> Result<NormGrads> {
        unreachable_kernel()
    }
    fn cross_entropy(&self, _: View, _: View, _: CrossEntropyOpts) -> Result<(StorageBox, StorageBox)> {
        unreachable_kernel()
    }
    fn cross_entropy_grad(&self, _: View, _: View, _: View, _: View, _: CrossEntropyOpts) -> Result<StorageBox> {
        unreachable_kernel()
    }
    fn index_select(&self, _: View, _: usize, _: View) -> Result<StorageBox> {
        unreachable_kernel()
    }
    fn index_add(&self, _: View, _: usize, _: View, _: View) -> Result<StorageBox> {
        unreachable_kernel()
    }
    fn gather(&self, _: View, _: usize, _: View) -> Result<StorageBox> {
        unreachable_kernel()
    }
    fn scatter_add(&self, _: View, _: usize, _: View, _: View) -> Result<StorageBox> {
        unreachable_kernel()
    }
    fn adamw(&self, _: View, _: View, _: View, _: View, _: AdamWStep) -> Result<(StorageBox, StorageBox, StorageBox)> {
        unreachable_kernel()
    }
}

fn fake_gpu(_: usize) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(FakeGpu))
}

#[test]
fn device_mismatches_name_both_devices() {
    // Whatever GPU backend is registered first serves gpu:0; the stand-in is enough here.
    register_gpu(fake_gpu);
    let gpu = Device::Gpu(0);
    let on_gpu = |dims: &[usize]| Tensor::new(Array::ones(dims, DType::F64, gpu).unwrap());
    let (c, g) = (t(&[2, 2]), on_gpu(&[2, 2]));
    assert_eq!(g.device(), gpu);
    assert_eq!(err(c.try_add(&g)), "device mismatch in add: lhs on cpu, rhs on gpu:0");
    assert_eq!(err(g.try_mul(&c)), "device mismatch in mul: lhs on gpu:0, rhs on cpu");
    assert_eq!(err(c.try_matmul(&g)), "device mismatch in matmul: lhs on cpu, rhs on gpu:0");
    assert_eq!(err(Tensor::try_cat(&[&c, &g], 0)), "device mismatch in cat: lhs on cpu, rhs on gpu:0");
    assert_eq!(err(Tensor::try_where_cond(&c, &c, &g)), "device mismatch in where: lhs on cpu, rhs on gpu:0");
    assert_eq!(
        err(c.try_layer_norm(Some(&on_gpu(&[2])), None, 1e-5)),
        "device mismatch in layer_norm: lhs on cpu, rhs on gpu:0"
    );
    let gi = Tensor::new(Array::zeros([2], DType::I32, gpu).unwrap());
    assert_eq!(err(c.try_index_select(0, &gi)), "device mismatch in index_select: lhs on cpu, rhs on gpu:0");
    assert_eq!(err(c.try_cross_entropy(&gi)), "device mismatch in cross_entropy: lhs on cpu, rhs on gpu:0");
    assert_eq!(
        err(c.try_gather(0, &Tensor::new(Array::zeros([1, 2], DType::I32, gpu).unwrap()))),
        "device mismatch in gather: lhs on cpu, rhs on gpu:0"
    );
    let p = Tensor::param(Array::ones([2], DType::F64, gpu).unwrap());
    let e = err(p.reshape([1, 2]).backward_with(Array::ones([1, 2], DType::F64, CPU).unwrap()));
    assert_eq!(e, "device mismatch in backward: lhs on gpu:0, rhs on cpu");
    // Moving explicitly is how data crosses devices.
    assert_eq!(tvals(&g.to_device(CPU).add(&c)), [2.0; 4]);
}

/// Tensors with a zero-size dim go through every op without a panic: ops give empty (or
/// identity-valued) results and backward gives empty gradients.
#[test]
fn empty_tensors_flow_through_every_op() {
    for dims in [[0usize, 3], [3, 0]] {
        let x = Tensor::param(Array::zeros(dims, DType::F64, CPU).unwrap());
        let n = dims[0];
        let w = Tensor::new(Array::ones([dims[1]], DType::F64, CPU).unwrap());
        let outs: Vec<(&str, Result<Tensor>)> = vec![
            ("exp", x.try_exp()),
            ("add", x.try_add(&w)),
            ("sum", x.try_sum(0, false)),
            ("sum", x.try_sum(1, true)),
            ("mean", x.try_mean(0, false)),
            ("var", x.try_var(1, false, 0)),
            ("sum_all", x.try_sum_all()),
            ("softmax", x.try_softmax(-1)),
            ("softmax", x.try_softmax(0)),
            ("log_softmax", x.try_log_softmax(-1)),
            ("layer_norm", x.try_layer_norm(Some(&w), Some(&w), 1e-5)),
            ("rms_norm", x.try_rms_norm(Some(&w), 1e-5)),
            ("matmul", x.try_matmul(&x.try_t().unwrap())),
            ("transpose", x.try_t().and_then(|t| t.try_contiguous())),
            ("cat", Tensor::try_cat(&[&x, &x], 0)),
            ("narrow", x.try_narrow(0, 0, 0)),
            ("index_select", x.try_index_select(1, &Tensor::new(Array::zeros([0], DType::I32, CPU).unwrap()))),
            ("gather", x.try_gather(1, &Tensor::new(Array::zeros([n, 0], DType::I32, CPU).unwrap()))),
            ("mse", x.try_mse(&x)),
        ];
        for (name, y) in outs {
            let y = y.unwrap_or_else(|e| panic!("{name} on {dims:?}: {e}"));
            let v = tvals(&y);
            assert_eq!(v.len(), y.elem_count(), "{name}");
            if y.requires_grad() {
                y.sum_all().backward().unwrap_or_else(|e| panic!("{name} backward on {dims:?}: {e}"));
                assert_eq!(x.grad().unwrap().dims(), dims, "{name}");
                x.zero_grad();
            }
        }
        if n == 0 {
            let t = Tensor::new(Array::zeros([0], DType::I32, CPU).unwrap());
            let ce = x.try_cross_entropy_with(&t, CrossEntropyOpts::default(), Reduction::Sum).unwrap();
            assert_eq!(tvals(&ce), [0.0]);
            assert_eq!(x.try_argmax(1, false).unwrap().dims(), [0]);
        }
    }
}

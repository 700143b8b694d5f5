//! CPU workloads: W1 (matmul, including the transposed operands backward uses), W6's
//! elementwise add, a reduction, and the transcendental and fused row kernels. Every
//! call allocates a fresh output, as the API does (PyTorch's side does the same).

use crate::harness::{keep, Call, Registry, Unit};
use plies::core::{Array, CrossEntropyOpts, DType, Device, Distribution, NormKind};

const M16: usize = 1 << 24;
const F32: f64 = 4.0;

fn randn(dims: &[usize], key: u64) -> Array {
    Array::random(dims.to_vec(), Distribution::Normal { mean: 0.0, std: 1.0 }, key, DType::F32, Device::Cpu)
        .expect("random input")
}

/// A call that applies `f` to inputs made once by `inputs`.
fn call<I: 'static>(inputs: impl Fn() -> I + 'static, f: impl Fn(&I) -> Array + 'static) -> impl Fn() -> Call {
    let make = std::rc::Rc::new(inputs);
    let f = std::rc::Rc::new(f);
    move || {
        let i = make();
        let f = f.clone();
        Box::new(move || keep(f(&i)))
    }
}

pub fn register(r: &mut Registry) {
    for n in [256usize, 512, 1024, 2048] {
        let flops = 2.0 * (n * n * n) as f64;
        r.add(
            "W1",
            format!("matmul_n{n}"),
            Unit::GflopS,
            flops,
            call(move || (randn(&[n, n], 1), randn(&[n, n], 2)), |(a, b)| a.matmul(b).unwrap()),
        );
    }
    // The operand layouts of matmul's backward: dA = dC B^T, dB = A^T dC.
    let n = 1024usize;
    let flops = 2.0 * (n * n * n) as f64;
    r.add(
        "W1",
        "matmul_nt_n1024",
        Unit::GflopS,
        flops,
        call(move || (randn(&[n, n], 1), randn(&[n, n], 2)), |(a, b)| a.matmul(&b.t().unwrap()).unwrap()),
    );
    r.add(
        "W1",
        "matmul_tn_n1024",
        Unit::GflopS,
        flops,
        call(move || (randn(&[n, n], 1), randn(&[n, n], 2)), |(a, b)| a.t().unwrap().matmul(b).unwrap()),
    );
    // A linear layer on a [batch, seq, d] activation (W3's MLP up-projection): one weight
    // matrix shared by every batch.
    let flops = 2.0 * (16 * 128 * 128 * 512) as f64;
    r.add(
        "W1",
        "linear_16x128x128_512",
        Unit::GflopS,
        flops,
        call(|| (randn(&[16, 128, 128], 1), randn(&[128, 512], 2)), |(x, w)| x.matmul(w).unwrap()),
    );
    // A batch of small matrices, as attention makes them (W3: batch 16 x 4 heads, 128 x 32).
    let flops = 2.0 * (64 * 128 * 128 * 32) as f64;
    r.add(
        "W1",
        "bmm_64x128x32x128",
        Unit::GflopS,
        flops,
        call(|| (randn(&[64, 128, 32], 1), randn(&[64, 32, 128], 2)), |(a, b)| a.matmul(b).unwrap()),
    );

    let bytes3 = 3.0 * F32 * M16 as f64;
    let bytes2 = 2.0 * F32 * M16 as f64;
    r.add(
        "W6",
        "add_16m",
        Unit::GbS,
        bytes3,
        call(|| (randn(&[M16], 1), randn(&[M16], 2)), |(a, b)| a.add(b).unwrap()),
    );
    // A row vector broadcast over rows, as a bias add does.
    r.add(
        "W6",
        "add_bias_4096x4096",
        Unit::GbS,
        bytes2,
        call(|| (randn(&[4096, 4096], 1), randn(&[4096], 2)), |(a, b)| a.add(b).unwrap()),
    );
    r.add("W6", "mul_scalar_16m", Unit::GbS, bytes2, call(|| randn(&[M16], 1), |a| a.mul_scalar(0.5).unwrap()));

    r.add("reduce", "sum_16m", Unit::GbS, F32 * M16 as f64, call(|| randn(&[M16], 1), |a| a.sum(0, false).unwrap()));
    r.add(
        "reduce",
        "sum_rows_4096x4096",
        Unit::GbS,
        F32 * M16 as f64,
        call(|| randn(&[4096, 4096], 1), |a| a.sum(1, false).unwrap()),
    );
    r.add(
        "reduce",
        "sum_cols_4096x4096",
        Unit::GbS,
        F32 * M16 as f64,
        call(|| randn(&[4096, 4096], 1), |a| a.sum(0, false).unwrap()),
    );
    r.add(
        "reduce",
        "max_rows_4096x4096",
        Unit::GbS,
        F32 * M16 as f64,
        call(|| randn(&[4096, 4096], 1), |a| a.max(1, false).unwrap()),
    );

    r.add("unary", "exp_16m", Unit::GbS, bytes2, call(|| randn(&[M16], 1), |a| a.exp().unwrap()));
    r.add("unary", "tanh_16m", Unit::GbS, bytes2, call(|| randn(&[M16], 1), |a| a.tanh().unwrap()));
    r.add("unary", "sigmoid_16m", Unit::GbS, bytes2, call(|| randn(&[M16], 1), |a| a.sigmoid().unwrap()));
    r.add("unary", "silu_16m", Unit::GbS, bytes2, call(|| randn(&[M16], 1), |a| a.silu().unwrap()));
    r.add("unary", "gelu_tanh_16m", Unit::GbS, bytes2, call(|| randn(&[M16], 1), |a| a.gelu_tanh().unwrap()));
    r.add("unary", "gelu_erf_16m", Unit::GbS, bytes2, call(|| randn(&[M16], 1), |a| a.gelu_erf().unwrap()));
    r.add("unary", "relu_16m", Unit::GbS, bytes2, call(|| randn(&[M16], 1), |a| a.relu().unwrap()));

    let rows = [4096usize, 1024];
    let bytes = 2.0 * F32 * (rows[0] * rows[1]) as f64;
    r.add(
        "fused",
        "softmax_4096x1024",
        Unit::GbS,
        bytes,
        call(move || randn(&rows, 1), |x| x.softmax(1, false).unwrap()),
    );
    r.add(
        "fused",
        "log_softmax_4096x1024",
        Unit::GbS,
        bytes,
        call(move || randn(&rows, 1), |x| x.softmax(1, true).unwrap()),
    );
    // Backward of softmax reads y and dy and writes dx.
    r.add(
        "fused",
        "softmax_grad_4096x1024",
        Unit::GbS,
        1.5 * bytes,
        call(
            move || (randn(&rows, 1).softmax(1, false).unwrap(), randn(&rows, 2)),
            |(y, g)| y.softmax_grad(g, 1, false).unwrap(),
        ),
    );
    r.add(
        "fused",
        "layer_norm_4096x1024",
        Unit::GbS,
        bytes,
        call(
            move || (randn(&rows, 1), randn(&[rows[1]], 2), randn(&[rows[1]], 3)),
            |(x, w, b)| x.norm(NormKind::Layer, Some(w), Some(b), 1e-5).unwrap().y,
        ),
    );
    r.add(
        "fused",
        "cross_entropy_4096x1024",
        Unit::GbS,
        bytes / 2.0,
        call(
            move || {
                let t: Vec<i32> = (0..rows[0] as i32).map(|i| (i * 7919) % rows[1] as i32).collect();
                (randn(&rows, 1), Array::from_vec(t, rows[0], Device::Cpu).unwrap())
            },
            |(x, t)| x.cross_entropy(t, CrossEntropyOpts::default()).unwrap().0,
        ),
    );
}

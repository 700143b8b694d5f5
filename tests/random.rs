//! Seeded randomness and dropout: the same seed gives bit-identical draws, whatever the
//! dtype split or thread count; dropout keeps each element with probability 1 - p, scales
//! the kept ones by 1/(1 - p), and its gradient is that same mask.

mod common;

use common::*;
use plies::autodiff::{rng::Rng, Array, CrossEntropyOpts, DType, Reduction, Tensor};

fn bits(t: &Tensor) -> Vec<u64> {
    t.to_vec::<f64>().iter().map(|v| v.to_bits()).collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn same_seed_same_draws() {
    let draw = |seed: u64| {
        let mut rng = Rng::new(seed);
        let a = Tensor::randn([1000], 0.0, 1.0, &mut rng, DType::F64, CPU);
        let b = Tensor::rand([3, 7], -2.0, 5.0, &mut rng, DType::F64, CPU);
        let c = Tensor::bernoulli([64], 0.3, &mut rng, DType::F64, CPU);
        [bits(&a), bits(&b), bits(&c)]
    };
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7)[0], draw(8)[0]);
    // Each draw consumes a key: consecutive draws differ.
    let mut rng = Rng::new(7);
    let a = Tensor::randn([100], 0.0, 1.0, &mut rng, DType::F64, CPU);
    let b = Tensor::randn([100], 0.0, 1.0, &mut rng, DType::F64, CPU);
    assert_ne!(bits(&a), bits(&b));
    // Element i depends only on (key, i): a longer draw extends a shorter one.
    let short = Tensor::rand([10], 0.0, 1.0, &mut Rng::new(3), DType::F64, CPU);
    let long = Tensor::rand([1000], 0.0, 1.0, &mut Rng::new(3), DType::F64, CPU);
    assert_eq!(bits(&short), bits(&long)[..10]);
    // Host-side draws (shuffles, sampling) are seeded the same way.
    assert_eq!(Rng::new(5).permutation(50), Rng::new(5).permutation(50));
    assert_ne!(Rng::new(5).permutation(50), Rng::new(6).permutation(50));
    // f32 draws are the f64 draws rounded.
    let d64 = Tensor::randn([500], 0.5, 2.0, &mut Rng::new(11), DType::F64, CPU).to_vec::<f64>();
    let d32 = Tensor::randn([500], 0.5, 2.0, &mut Rng::new(11), DType::F32, CPU).to_vec::<f32>();
    assert!(d64.iter().zip(&d32).all(|(&a, &b)| a as f32 == b));
}

#[test]
fn draws_have_the_asked_distribution() {
    let n = 200_000;
    let mut rng = Rng::new(42);
    let z = Tensor::randn([n], 1.5, 2.0, &mut rng, DType::F64, CPU).to_vec::<f64>();
    let m = mean(&z);
    let sd = (z.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n as f64).sqrt();
    // Five standard errors.
    assert!((m - 1.5).abs() < 5.0 * 2.0 / (n as f64).sqrt(), "mean {m}");
    assert!((sd - 2.0).abs() < 5.0 * 2.0 / (2.0 * n as f64).sqrt(), "std {sd}");
    let u = Tensor::rand([n], -1.0, 3.0, &mut rng, DType::F64, CPU).to_vec::<f64>();
    assert!(u.iter().all(|&v| (-1.0..3.0).contains(&v)));
    assert!((mean(&u) - 1.0).abs() < 5.0 * 4.0 / (12.0 * n as f64).sqrt());
    let b = Tensor::bernoulli([n], 0.25, &mut rng, DType::F32, CPU).to_vec::<f32>();
    assert!(b.iter().all(|&v| v == 0.0 || v == 1.0));
    let frac = b.iter().filter(|&&v| v == 1.0).count() as f64 / n as f64;
    assert!((frac - 0.25).abs() < 5.0 * (0.25f64 * 0.75 / n as f64).sqrt(), "{frac}");
}

#[test]
fn dropout_statistics() {
    let n = 200_000;
    let x = Tensor::ones([n], DType::F64, CPU);
    for p in [0.1, 0.5, 0.9] {
        let y = x.dropout(p, &mut Rng::new(5)).to_vec::<f64>();
        let scale = 1.0 / (1.0 - p);
        assert!(y.iter().all(|&v| v == 0.0 || v == scale), "kept values are scaled by 1/(1-p)");
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        assert!((dropped - p).abs() < 5.0 * (p * (1.0 - p) / n as f64).sqrt(), "p {p}: dropped {dropped}");
        // The expectation is preserved.
        assert!((mean(&y) - 1.0).abs() < 5.0 * (p / (1.0 - p) / n as f64).sqrt(), "p {p}: mean {}", mean(&y));
    }
    // p = 0 is the identity (no draw, the same tensor).
    let mut rng = Rng::new(1);
    let y = x.dropout(0.0, &mut rng);
    assert_eq!(y.id(), x.id());
    assert_eq!(rng, Rng::new(1));
}

#[test]
fn dropout_gradient_is_the_scaled_mask() {
    let p = 0.3;
    let x = Tensor::param(Tensor::randn([40, 50], 0.0, 1.0, &mut Rng::new(2), DType::F64, CPU).value());
    let y = x.dropout(p, &mut Rng::new(9));
    y.sum_all().backward().unwrap();
    let (g, yv, xv) = (vals(&x.grad().unwrap()), tvals(&y), tvals(&x));
    for i in 0..g.len() {
        assert!(g[i] == 0.0 || g[i] == 1.0 / (1.0 - p), "gradient {}", g[i]);
        // The forward used the same mask: y = x * grad, exactly.
        assert_eq!(yv[i], xv[i] * g[i]);
    }
    // The same seed gives the same mask; another seed another.
    let y2 = x.dropout(p, &mut Rng::new(9));
    assert_eq!(bits(&y2), bits(&y));
    assert_ne!(bits(&x.dropout(p, &mut Rng::new(10))), bits(&y));
    // With the mask fixed by the seed, dropout passes the finite-difference check too.
    gradcheck("dropout", |t| t[0].try_dropout(p, &mut Rng::new(9)), &[x.value()]);
    // In f32 as well.
    let x32 = Tensor::param(x.value().to_dtype(DType::F32).unwrap());
    x32.dropout(p, &mut Rng::new(9)).sum_all().backward().unwrap();
    let g32 = x32.grad().unwrap().to_vec::<f32>().unwrap();
    assert!(g32.iter().zip(&g).all(|(&a, &b)| (a == 0.0) == (b == 0.0)), "same mask in f32 and f64");
}

/// A small training-style computation large enough to take the CPU backend's parallel
/// paths (threaded gemm, chunked reductions, row-parallel fused kernels); returns the bits
/// of its loss and gradients.
fn pipeline(seed: u64) -> Vec<Vec<u64>> {
    let mut rng = Rng::new(seed);
    let x = Tensor::randn([300, 200], 0.0, 1.0, &mut rng, DType::F64, CPU);
    let w = Tensor::param(Tensor::randn([200, 160], 0.0, 0.1, &mut rng, DType::F64, CPU).value());
    let gain = Tensor::param(Tensor::rand([160], 0.5, 1.5, &mut rng, DType::F64, CPU).value());
    let h = x.matmul(&w).layer_norm(Some(&gain), None, 1e-5).gelu_tanh().dropout(0.1, &mut rng);
    let targets =
        Tensor::new(Tensor::rand([300], 0.0, 160.0, &mut rng, DType::F64, CPU).value().to_dtype(DType::I32).unwrap());
    let ce = h.cross_entropy_with(
        &targets,
        CrossEntropyOpts { label_smoothing: 0.1, ..Default::default() },
        Reduction::Mean,
    );
    let long = Tensor::randn([100_000], 0.0, 1.0, &mut rng, DType::F64, CPU);
    let loss = ce.add(&long.sqr().mean_all().mul(&h.softmax(0).max(0, false).sum_all()));
    loss.backward().unwrap();
    vec![bits(&loss), bits(&Tensor::new(w.grad().unwrap())), bits(&Tensor::new(gain.grad().unwrap()))]
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| pipeline(17))
    };
    let one = run(1);
    assert_eq!(one, run(1), "repeatable in one pool");
    assert_eq!(one, run(2), "1 vs 2 threads");
    assert_eq!(one, run(5), "1 vs 5 threads");
    assert_eq!(one, pipeline(17), "1 thread vs the global pool");
    assert_ne!(one[0], pipeline(18)[0], "another seed gives another loss");
    // Draws alone, in f32, past the parallel grain.
    let draw =
        || Array::random([300_000], plies::autodiff::Distribution::Normal { mean: 0.0, std: 1.0 }, 99, DType::F32, CPU);
    let single = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(draw).unwrap();
    assert_eq!(single.to_vec::<f32>().unwrap(), draw().unwrap().to_vec::<f32>().unwrap());
}

//! Random fills: uniform and bernoulli must equal the CPU bit for bit, normal to f32
//! rounding, for the same key.

use plies::core::rng::Rng;
use plies::core::{Array, DType, Device, Distribution, Result};

fn draw(dist: Distribution, n: usize, key: u64, dev: Device) -> Result<(Vec<f32>, Vec<f32>)> {
    let d = Array::random([n], dist, key, DType::F32, dev)?.to_vec::<f32>()?;
    let c = Array::random([n], dist, key, DType::F32, Device::Cpu)?.to_vec::<f32>()?;
    Ok((d, c))
}

pub fn uniform_and_bernoulli_bitwise(dev: Device) -> Result<()> {
    let mut rng = Rng::new(7);
    let bound = 1.0 / (768f64).sqrt();
    let ranges =
        [(0.0, 1.0), (-bound, bound), (-1.0, 1.0), (2.0, 2.0 + 1e-7), (-3e30, 1e30), (5.0, -5.0), (0.0, 1e-40)];
    for (lo, hi) in ranges {
        let (d, c) = draw(Distribution::Uniform { lo, hi }, 20_001, rng.next_key(), dev)?;
        let bad: Vec<usize> = (0..d.len()).filter(|&i| d[i].to_bits() != c[i].to_bits()).collect();
        assert!(
            bad.is_empty(),
            "uniform({lo}, {hi}): {} differ, first [{}] {} vs {}",
            bad.len(),
            bad[0],
            d[bad[0]],
            c[bad[0]]
        );
    }
    for p in [0.0, 0.1, 0.5, 0.9, 1.0] {
        let (d, c) = draw(Distribution::Bernoulli { p }, 10_007, rng.next_key(), dev)?;
        assert_eq!(d, c, "bernoulli({p})");
    }
    Ok(())
}

pub fn normal_close(dev: Device) -> Result<()> {
    let key = Rng::new(8).next_key();
    let (d, c) = draw(Distribution::Normal { mean: 0.5, std: 2.0 }, 50_001, key, dev)?;
    let worst = d.iter().zip(&c).map(|(a, b)| (a - b).abs() as f64 / (1.0 + b.abs() as f64)).fold(0.0, f64::max);
    assert!(worst < 2e-5, "normal differs by up to {worst}");
    let mean = d.iter().map(|&v| v as f64).sum::<f64>() / d.len() as f64;
    assert!((mean - 0.5).abs() < 0.05, "mean {mean}");
    Ok(())
}

device_tests!(uniform_and_bernoulli_bitwise, normal_close);

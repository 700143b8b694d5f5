//! Helpers of the conformance suite: the device list, seeded test data, paired arrays
//! (the device under test in f32 beside a CPU f64 reference) and tolerant comparison.

#![allow(dead_code)]

use plies::core::rng::{self, Rng};
use plies::core::{Array, DType, Device, Result, Shape};
use std::sync::OnceLock;

/// The GPU to test, or `None` after a loud skip message. With `PLIES_REQUIRE_GPU=1` (set
/// by .ci/run) a missing adapter fails the test instead.
pub fn gpu() -> Option<Device> {
    static CHOSEN: OnceLock<std::result::Result<Device, String>> = OnceLock::new();
    let r = CHOSEN.get_or_init(|| {
        plies::init();
        if plies::shaders::adapters().is_empty() {
            return Err(plies::shaders::no_adapter_reason());
        }
        match plies::shaders::gpu(0) {
            Ok(g) => {
                eprintln!("GPU conformance tests run on gpu:0 = {}", g.description());
                Ok(Device::Gpu(0))
            }
            Err(e) => Err(e.to_string()),
        }
    });
    match r {
        Ok(d) => Some(*d),
        Err(why) => {
            if std::env::var("PLIES_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("PLIES_REQUIRE_GPU=1 but no GPU is usable: {why}");
            }
            static ONCE: OnceLock<()> = OnceLock::new();
            ONCE.get_or_init(|| {
                // Straight to the process's stderr: the test harness captures `eprintln!` of
                // passing tests, and a skip must be seen.
                use std::io::Write;
                let bar = "=".repeat(62);
                let _ = writeln!(std::io::stderr(), "\n{bar}\nGPU tests SKIPPED: {why}\n{bar}\n");
            });
            None
        }
    }
}

/// Values in `[lo, hi)` from a seed (host side, independent of any backend).
pub fn values(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let key = Rng::new(seed).next_key();
    (0..n).map(|i| lo + (hi - lo) * rng::unit(key, i as u32)).collect()
}

/// Integers in `0..k`.
pub fn ints(n: usize, seed: u64, k: usize) -> Vec<i32> {
    let key = Rng::new(seed).next_key();
    (0..n).map(|i| (rng::bits(key, i as u32) % k as u32) as i32).collect()
}

/// The same data twice: on the device under test in `dtype` (f32 for floats), and on the
/// CPU in f64 (the reference). View ops are applied to both.
#[derive(Clone, Debug)]
pub struct Pair {
    pub dev: Array,
    pub cpu: Array,
}

impl Pair {
    pub fn new(data: &[f64], shape: impl Into<Shape>, device: Device) -> Result<Pair> {
        let shape = shape.into();
        // Both sides start from the same (f32-representable) values.
        let data: Vec<f64> = data.iter().map(|&v| v as f32 as f64).collect();
        let cpu = Array::from_vec(data, shape.clone(), Device::Cpu)?;
        let dev = cpu.to_dtype(DType::F32)?.to_device(device)?;
        Ok(Pair { dev, cpu })
    }

    pub fn rand(shape: impl Into<Shape>, seed: u64, lo: f64, hi: f64, device: Device) -> Result<Pair> {
        let shape = shape.into();
        Pair::new(&values(shape.elem_count(), seed, lo, hi), shape, device)
    }

    /// i32 data, identical on both sides.
    pub fn ints(data: &[i32], shape: impl Into<Shape>, device: Device) -> Result<Pair> {
        let shape = shape.into();
        let cpu = Array::from_slice(data, shape.clone(), Device::Cpu)?;
        Ok(Pair { dev: cpu.to_device(device)?, cpu })
    }

    /// Apply the same op to both sides.
    pub fn map(&self, f: impl Fn(&Array) -> Result<Array>) -> Result<Pair> {
        Ok(Pair { dev: f(&self.dev)?, cpu: f(&self.cpu)? })
    }

    pub fn zip(&self, other: &Pair, f: impl Fn(&Array, &Array) -> Result<Array>) -> Result<Pair> {
        Ok(Pair { dev: f(&self.dev, &other.dev)?, cpu: f(&self.cpu, &other.cpu)? })
    }

    pub fn zip3(&self, b: &Pair, c: &Pair, f: impl Fn(&Array, &Array, &Array) -> Result<Array>) -> Result<Pair> {
        Ok(Pair { dev: f(&self.dev, &b.dev, &c.dev)?, cpu: f(&self.cpu, &b.cpu, &c.cpu)? })
    }

    /// Compare the device result with the reference: |d - r| <= atol + rtol * |r|.
    pub fn check(&self, what: &str, rtol: f64, atol: f64) -> Result<()> {
        assert_eq!(self.dev.dims(), self.cpu.dims(), "{what}: shapes differ");
        let d = self.dev.to_vec::<f64>()?;
        let r = self.cpu.to_vec::<f64>()?;
        assert_close(what, &d, &r, rtol, atol);
        Ok(())
    }

    /// Exact equality (integer results, indices, comparisons).
    pub fn check_exact(&self, what: &str) -> Result<()> {
        assert_eq!(self.dev.dims(), self.cpu.dims(), "{what}: shapes differ");
        let d = self.dev.to_vec::<f64>()?;
        let r = self.cpu.to_vec::<f64>()?;
        let bad: Vec<usize> = (0..d.len()).filter(|&i| !(d[i] == r[i] || d[i].is_nan() && r[i].is_nan())).collect();
        assert!(
            bad.is_empty(),
            "{what}: {} of {} differ, first at {}: got {} want {}",
            bad.len(),
            d.len(),
            bad[0],
            d[bad[0]],
            r[bad[0]]
        );
        Ok(())
    }
}

pub fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let mut bad = Vec::new();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= atol + rtol * w.abs()
        };
        if !ok {
            bad.push(i);
        }
    }
    if !bad.is_empty() {
        let show: Vec<String> = bad.iter().take(6).map(|&i| format!("[{i}] got {} want {}", got[i], want[i])).collect();
        panic!(
            "{what}: {} of {} elements differ (rtol {rtol}, atol {atol}): {}",
            bad.len(),
            got.len(),
            show.join(", ")
        );
    }
}

/// Shapes with odd sizes that are no multiple of any tile, and size-1 dims.
pub fn odd_shapes() -> Vec<Vec<usize>> {
    vec![
        vec![],
        vec![1],
        vec![7],
        vec![33],
        vec![3, 5],
        vec![1, 9],
        vec![13, 1],
        vec![5, 3, 7],
        vec![2, 1, 3, 5],
        vec![257],
    ]
}

use plies::autodiff::Tensor;

/// Compare a differentiable function on both sides: `f` gets the inputs as parameters
/// (f32 on the device, f64 on the CPU) and returns an output; the loss is the sum of the
/// output times fixed random weights, so every output element gets its own upstream
/// gradient. Checks the output and every input's gradient.
pub fn check_grads(
    what: &str,
    inputs: &[Pair],
    rtol: f64,
    atol: f64,
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<()> {
    let run = |arrays: Vec<Array>| -> Result<(Array, Vec<Array>)> {
        let params: Vec<Tensor> = arrays.into_iter().map(Tensor::param).collect();
        let out = f(&params)?;
        let v = out.value();
        let w = Array::from_vec(values(v.elem_count(), 4242, -1.0, 1.0), v.shape().clone(), Device::Cpu)?
            .to_dtype(v.dtype())?
            .to_device(v.device())?;
        out.try_mul(&Tensor::new(w))?.try_sum_all()?.backward()?;
        let grads = params
            .iter()
            .map(|p| p.grad().ok_or_else(|| plies::core::Error::msg(format!("{what}: an input got no gradient"))))
            .collect::<Result<Vec<_>>>()?;
        Ok((v, grads))
    };
    let (dv, dg) = run(inputs.iter().map(|p| p.dev.clone()).collect())?;
    let (cv, cg) = run(inputs.iter().map(|p| p.cpu.clone()).collect())?;
    Pair { dev: dv, cpu: cv }.check(&format!("{what}: value"), rtol, atol)?;
    for (i, (d, c)) in dg.into_iter().zip(cg).enumerate() {
        Pair { dev: d, cpu: c }.check(&format!("{what}: grad of input {i}"), rtol, atol)?;
    }
    Ok(())
}

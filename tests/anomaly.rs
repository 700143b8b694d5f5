//! Anomaly detection (`plies::autodiff::detect_anomaly`): the first op that makes a NaN or
//! an Inf out of finite values is named, with its input shapes and pass, on the CPU and on
//! the GPU. The switch is process-wide, which is why these tests have a binary of their
//! own and take `SWITCH` while they run.

#[path = "gpu_common/mod.rs"]
mod common;

use plies::autodiff::{detect_anomaly, is_anomaly_enabled, AnomalyGuard, DType, Device, Error, Pass, Tensor};
use plies::core::{Result, Shape};
use plies::nn::layers::{Activation, Linear, Sequential};
use plies::nn::{Layer, Module, Scope};
use std::sync::{Mutex, MutexGuard};

static SWITCH: Mutex<()> = Mutex::new(());

/// Exclusive use of the switch, with detection set to `on` until the guards drop. A tuple
/// drops its first field first: the setting is restored before the lock is released.
fn anomaly(on: bool) -> (AnomalyGuard, MutexGuard<'static, ()>) {
    let lock = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    (AnomalyGuard::new(on), lock)
}

fn param(data: &[f32], shape: impl Into<Shape>, device: Device) -> Tensor {
    let t = Tensor::from_slice(data, shape, device);
    Tensor::param(t.value())
}

/// The anomaly inside `r`, checked against the op, pass and input shapes it must name.
#[track_caller]
fn expect_anomaly<T>(r: Result<T>, op: &str, pass: Pass, inputs: &[&[usize]]) -> String {
    let e = match r {
        Ok(_) => panic!("expected an anomaly in {pass:?} of {op}, got Ok"),
        Err(e) => e,
    };
    let Error::Anomaly { op: got, pass: got_pass, inputs: got_inputs, .. } = &e else {
        panic!("expected an anomaly in {pass:?} of {op}, got: {e}");
    };
    let want: Vec<Shape> = inputs.iter().map(|d| Shape::from(d.to_vec())).collect();
    assert_eq!((*got, *got_pass, got_inputs), (op, pass, &want), "wrong anomaly: {e}");
    let msg = e.to_string();
    println!("{msg}");
    let side = if pass == Pass::Forward { "forward" } else { "backward" };
    assert!(msg.contains(side) && msg.contains(op), "message does not name the pass and op: {msg}");
    msg
}

/// A parameter-free layer from a function, to put ops inside a model.
struct Apply(fn(&Tensor) -> Result<Tensor>);

impl Module for Apply {
    fn visit(&self, _: &mut Scope<'_>) {}
}

impl Layer for Apply {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        (self.0)(x)
    }
}

/// Linear 4 -> 3 with every weight `w` and zero bias, then `head`.
fn model(w: &[f32], head: Sequential, device: Device) -> Sequential {
    let weight = param(w, [3, 4], device);
    let bias = param(&[0.0; 3], [3], device);
    let mut m = Sequential::new().push(Linear::from_tensors(weight, Some(bias)));
    m.layers.extend(head.layers);
    m
}

fn log_of_negative(device: Device) {
    let x = param(&[1.0, -2.0, 3.0, 4.0, 5.0, 6.0], [2, 3], device);
    let h = x.mul_scalar(2.0); // finite: not blamed
    let msg = expect_anomaly(h.try_log(), "log", Pass::Forward, &[&[2, 3]]);
    assert!(msg.contains("1 NaN and 0 Inf among 6 values (first at flat index 1"), "{msg}");

    // The panicking form panics with the same message.
    let caught = std::panic::catch_unwind(|| h.log()).expect_err("log of a negative number must panic");
    let text = caught.downcast_ref::<String>().expect("a formatted panic message");
    assert_eq!(text, &msg);
}

/// A user's function composed of ops: 0/0 where x - x is exactly zero.
fn zero_over_zero(device: Device) {
    fn ratio(x: &Tensor) -> Result<Tensor> {
        let d = x.try_sub(x)?;
        d.try_div(&d)
    }
    let x = param(&[0.5, 2.0, -1.0, 7.0], [4], device);
    let msg = expect_anomaly(ratio(&x), "div", Pass::Forward, &[&[4], &[4]]);
    assert!(msg.contains("4 NaN and 0 Inf among 4 values"), "{msg}");
}

/// exp of a Linear's output of 400 overflows f32 inside a model, in forward.
fn exp_overflow_in_model(device: Device) {
    let m = model(&[100.0; 12], Sequential::new().push(Apply(|h| h.try_exp())), device);
    let x = Tensor::ones([2, 4], DType::F32, device);
    let loss = m.try_forward(&x).and_then(|y| y.try_mse(&Tensor::zeros([2, 3], DType::F32, device)));
    let msg = expect_anomaly(loss, "exp", Pass::Forward, &[&[2, 3]]);
    assert!(msg.contains("0 NaN and 6 Inf"), "{msg}");
}

/// Linear -> relu -> sqrt: relu makes exact zeros, sqrt(0) = 0 is finite, but its gradient
/// 1 / (2 sqrt(0)) is not. Only backward can see it, and it names sqrt, not relu (whose
/// rule then multiplies Inf by 0).
fn sqrt_at_zero_in_model(device: Device) {
    let w = [1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0, 0.5, 0.5, 0.5, 0.5];
    let head = Sequential::new().push(Activation::Relu).push(Apply(|h| h.try_sqrt()));
    let m = model(&w, head, device);
    let x = Tensor::ones([2, 4], DType::F32, device);
    let loss = m.try_forward(&x).and_then(|y| y.try_mean_all()).expect("the forward pass is finite");
    assert!(loss.item().is_finite());
    let msg = expect_anomaly(loss.backward(), "sqrt", Pass::Backward, &[&[2, 3]]);
    assert!(msg.contains("0 NaN and 2 Inf among 6 values (first at flat index 1"), "{msg}");
    assert!(msg.contains("the node recorded by forward op sqrt"), "{msg}");
}

/// a / b with a tiny b: a / b = 1e30 is finite, d/db = -a / b^2 = -1e60 is not (in f32).
fn tiny_divisor_backward(device: Device) {
    let a = param(&[1.0, 2.0], [2], device);
    let b = param(&[1e-30, 1.0], [2], device);
    let loss = a.try_div(&b).and_then(|q| q.try_sum_all()).expect("the forward pass is finite");
    let msg = expect_anomaly(loss.backward(), "div", Pass::Backward, &[&[2], &[2]]);
    assert!(msg.contains("the gradient for input 1 (shape [2])"), "{msg}");
    assert!(msg.contains("0 NaN and 1 Inf among 2 values (first at flat index 0: -inf)"), "{msg}");
    // The gradient for a is finite and came first; it did not stop backward.
}

/// A tensor used twice whose two finite gradients (3e38 each) add up past f32's range.
fn accumulation_overflow(device: Device) {
    let x = param(&[1e-30], [1], device);
    let big = Tensor::from_slice(&[3e38f32], [1], device);
    let (u, v) = (x.mul(&big), x.mul(&big));
    let loss = u.add(&v).sum_all();
    assert!(loss.item().is_finite());
    let msg = expect_anomaly(loss.backward(), "mul", Pass::Backward, &[&[1], &[1]]);
    assert!(msg.contains("overflowed when added"), "{msg}");
}

/// A NaN in the data is not the op's fault: nothing is reported, and the NaN flows on.
fn nan_input_not_blamed(device: Device) {
    let x = param(&[f32::NAN, 1.0], [2], device);
    let y = x.try_exp().and_then(|y| y.try_sum_all()).expect("NaN inputs are not blamed");
    assert!(y.item().is_nan());
    y.backward().expect("a NaN that came from the data is not blamed in backward either");
    // An -inf mask is the classic legitimate Inf: masked softmax stays quiet.
    let scores = param(&[0.3, 0.1, -0.2], [3], device);
    let mask = Tensor::from_slice(&[0.0, f32::NEG_INFINITY, 0.0], [3], device);
    let p = scores.try_add(&mask).and_then(|s| s.try_softmax(0)).expect("masked softmax");
    p.try_mul(&Tensor::from_slice(&[1.0f32, 2.0, 3.0], [3], device)).unwrap().sum_all().backward().unwrap();
    assert!(scores.grad().unwrap().to_vec::<f32>().unwrap().iter().all(|g| g.is_finite()));
}

fn off_reports_nothing(device: Device) {
    let x = param(&[-1.0], [1], device);
    let y = x.try_log().expect("anomaly detection is off");
    assert!(y.item().is_nan());
    let z = param(&[0.0], [1], device).sqrt().sum_all();
    z.backward().expect("anomaly detection is off");
}

macro_rules! on_both_devices {
    ($($name:ident => $on:expr;)*) => {
        mod cpu {
            $(
                #[test]
                fn $name() {
                    let _g = super::anomaly($on);
                    super::$name(plies::autodiff::Device::Cpu);
                }
            )*
        }
        mod gpu {
            $(
                #[test]
                fn $name() {
                    let Some(d) = super::common::gpu() else { return };
                    let _g = super::anomaly($on);
                    super::$name(d);
                }
            )*
        }
    };
}

on_both_devices! {
    log_of_negative => true;
    zero_over_zero => true;
    exp_overflow_in_model => true;
    sqrt_at_zero_in_model => true;
    tiny_divisor_backward => true;
    accumulation_overflow => true;
    nan_input_not_blamed => true;
    off_reports_nothing => false;
}

#[test]
fn guard_restores_the_previous_setting() {
    let _lock = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    detect_anomaly(false);
    {
        let _on = AnomalyGuard::new(true);
        assert!(is_anomaly_enabled());
        {
            let _off = AnomalyGuard::new(false);
            assert!(!is_anomaly_enabled());
        }
        assert!(is_anomaly_enabled());
    }
    assert!(!is_anomaly_enabled());
}

/// `PLIES_DETECT_ANOMALY=1` is read at the first op of a process, so it is tested in a
/// child process running `env_child` alone.
#[test]
fn environment_variable_turns_it_on() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "env_child", "--ignored", "--test-threads", "1"])
        .env("PLIES_DETECT_ANOMALY", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("1 passed"), "child failed:\n{text}");
}

#[test]
#[ignore = "run by environment_variable_turns_it_on with PLIES_DETECT_ANOMALY=1"]
fn env_child() {
    assert_eq!(std::env::var("PLIES_DETECT_ANOMALY").as_deref(), Ok("1"), "run me through the parent test");
    let x = param(&[-1.0], [1], Device::Cpu);
    expect_anomaly(x.try_log(), "log", Pass::Forward, &[&[1]]);
    assert!(is_anomaly_enabled());
}

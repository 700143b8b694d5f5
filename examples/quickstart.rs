//! Quickstart: fit a linear model y = x W + b to noisy data with autodiff and plain SGD,
//! on the CPU. Ends with one machine-readable line.

use plies::autodiff::{no_grad, rng::Rng, DType, Device, Tensor};

fn main() {
    let device = Device::Cpu;
    let mut rng = Rng::new(0);
    let (n, d) = (256, 4);
    let x = Tensor::randn([n, d], 0.0, 1.0, &mut rng, DType::F32, device);
    let w_true = Tensor::from_vec(vec![2.0f32, -1.0, 0.5, 3.0], [d, 1], device);
    let noise = Tensor::randn([n, 1], 0.0, 0.01, &mut rng, DType::F32, device);
    let y = x.matmul(&w_true) + 0.7 + noise;

    let w = Tensor::param(Tensor::zeros([d, 1], DType::F32, device).value());
    let b = Tensor::param(Tensor::zeros([1], DType::F32, device).value());
    let lr = 0.1;
    let mut loss_value = f64::NAN;
    for step in 0..200 {
        let loss = (x.matmul(&w) + &b).mse(&y);
        loss.backward().expect("backward");
        no_grad(|| {
            for p in [&w, &b] {
                let g = p.grad().expect("gradient");
                p.set_value(p.value().sub(&g.mul_scalar(lr).unwrap()).unwrap()).unwrap();
                p.zero_grad();
            }
        });
        loss_value = loss.item();
        if step % 50 == 0 {
            println!("step {step:3} loss {loss_value:.6}");
        }
    }
    println!("learned w = {:?}, b = {:?}", w.to_vec::<f32>(), b.to_vec::<f32>());
    println!("result: final_mse={loss_value:.6}");
}

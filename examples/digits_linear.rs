//! A linear classifier (multinomial logistic regression) on the embedded 8x8 digits, trained
//! with minibatch SGD. Shows the data and training tools: a seeded stratified split, a shuffled
//! loader, the progress bar, `metrics.jsonl` and `loss.png` in the output folder.
//!
//!     cargo run --release --example digits_linear -- --steps 600 --seed 1 --out runs/digits
//!
//! Ends with one machine-readable line: `result: {...}`.

use plies::autodiff::{no_grad, rng::Rng, Array, DType, Device, Distribution, Result, Tensor};
use plies::nn::data::{digits, DataLoader, LabeledData};
use plies::nn::train::{parse_common, CommonArgs, Run};

/// Mean cross-entropy and accuracy of the model on a whole set.
fn evaluate(w: &Tensor, b: &Tensor, set: &LabeledData, device: Device) -> Result<(f64, f64)> {
    let batch = set.to_batch(device)?;
    no_grad(|| {
        let logits = batch.inputs.try_matmul(w)?.try_add(b)?;
        let loss = logits.try_cross_entropy(&batch.targets)?.item();
        let pred = logits.try_argmax(1, false)?.try_to_vec::<i32>()?;
        let hits = pred.iter().zip(set.labels()).filter(|(p, y)| p == y).count();
        Ok((loss, hits as f64 / set.len() as f64))
    })
}

fn main() {
    // Registers the GPU backend, so that `--device gpu` (or PLIES_DEVICE=gpu) can open it.
    plies::init();
    let args = parse_common("Linear classifier on the embedded 8x8 digits");
    if let Err(e) = train(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn train(args: &CommonArgs) -> Result<()> {
    let (steps, device) = (args.steps_or(600), args.device);
    let (batch_size, lr) = (64, 0.5);

    let all = digits::load()?.scaled(1.0 / digits::MAX_PIXEL);
    let (train, test) = all.split(0.2, args.seed)?;
    let loader = DataLoader::new(&train, batch_size).shuffle(args.seed).drop_last(true).device(device);

    let mut rng = Rng::new(args.seed);
    let (d, c) = (all.feature_len(), all.num_classes());
    let normal = Distribution::Normal { mean: 0.0, std: 0.01 };
    let w = Tensor::param(Tensor::try_random([d, c], normal, &mut rng, DType::F32, device)?.value());
    let b = Tensor::param(Array::zeros([c], DType::F32, device)?);

    let mut run = Run::create("digits_linear", args.out_dir("digits_linear"), steps)?;
    run.config(&[
        ("steps", steps.into()),
        ("seed", args.seed.into()),
        ("device", device.to_string().into()),
        ("batch_size", batch_size.into()),
        ("lr", lr.into()),
        ("train_examples", train.len().into()),
        ("test_examples", test.len().into()),
    ])?;
    let mut loss_value = f64::NAN;
    for (step, batch) in (0..steps).zip(loader.stream()) {
        let batch = batch?;
        let loss = batch.inputs.try_matmul(&w)?.try_add(&b)?.try_cross_entropy(&batch.targets)?;
        loss.backward()?;
        no_grad(|| -> Result<()> {
            for p in [&w, &b] {
                let g = p.grad().expect("a parameter has a gradient after backward");
                p.set_value(p.value().sub(&g.mul_scalar(lr)?)?)?;
                p.zero_grad();
            }
            Ok(())
        })?;
        loss_value = loss.item();
        run.step(step, loss_value, batch.len() as u64)?;
        if (step + 1) % (steps / 10).max(1) == 0 || step + 1 == steps {
            let (test_loss, test_acc) = evaluate(&w, &b, &test, device)?;
            run.eval(step, &[("test_loss", test_loss), ("test_accuracy", test_acc)])?;
        }
    }
    let (test_loss, test_acc) = evaluate(&w, &b, &test, device)?;
    let line = run.finish(&[
        ("final_train_loss", loss_value.into()),
        ("test_loss", test_loss.into()),
        ("test_accuracy", test_acc.into()),
    ])?;
    println!("{line}");
    Ok(())
}

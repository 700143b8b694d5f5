//! A small convolutional network on Fashion-MNIST (28x28 greyscale images of clothing in ten
//! classes): two 3x3 convolutions with ReLU and 2x2 max pooling, then two Linear layers,
//! trained with Adam. The data comes from `scripts/fetch_data.sh` (into `data/fetched/`, or
//! `$PLIES_DATA_DIR`); without it the example says so and exits.
//!
//!     scripts/fetch_data.sh
//!     cargo run --release --example fashion_cnn
//!     cargo run --release --example fashion_cnn -- --steps 1000 --seed 1 --out runs/fashion
//!
//! The output folder (`runs/fashion_cnn`) gets `metrics.jsonl` and `loss.png`; the last line on
//! stdout is the result, with the test accuracy on the 10,000 test images. `--save-every N`
//! saves the training state every N steps; `--resume runs/fashion_cnn` goes on from the last.

use plies::autodiff::Result;
use plies::nn::checkpoint::TrainState;
use plies::nn::data::mnist::{self, Split};
use plies::nn::data::{fetched_dir, DataLoader, LabeledData};
use plies::nn::prelude::*;
use plies::nn::train::{parse_common, CommonArgs, Run};
use std::path::Path;

fn main() {
    // Registers the GPU backend, so that `--device gpu` (or PLIES_DEVICE=gpu) can open it.
    plies::init();
    let args = parse_common("A small CNN on Fashion-MNIST (fetch it first with scripts/fetch_data.sh)");
    let outcome = load(&fetched_dir().join("fashion-mnist")).and_then(|(train_set, test_set)| {
        println!("Fashion-MNIST: {} training and {} test images", train_set.len(), test_set.len());
        train(&args, &train_set, &test_set)
    });
    match outcome {
        Ok(outcome) => println!("{}", outcome.result_line),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// The training and test sets from `dir`; the error says how to fetch them when they are not there.
pub fn load(dir: &Path) -> Result<(LabeledData, LabeledData)> {
    Ok((mnist::load_dir(dir, Split::Train)?, mnist::load_dir(dir, Split::Test)?))
}

/// What a run leaves behind besides its output folder.
pub struct Outcome {
    pub losses: Vec<f64>,
    pub test_accuracy: f64,
    pub result_line: String,
}

/// Images `[n, 1, h, w]` -> class logits `[n, classes]`.
pub fn cnn(init: &mut Init, image: (usize, usize), classes: usize) -> Sequential {
    let flat = 32 * (image.0 / 4) * (image.1 / 4);
    Sequential::new()
        .push(Conv2d::new(init, 1, 16, 3, 1, 1))
        .push(Activation::Relu)
        .push(MaxPool2d::new(2))
        .push(Conv2d::new(init, 16, 32, 3, 1, 1))
        .push(Activation::Relu)
        .push(MaxPool2d::new(2))
        .push(Flatten::default())
        .push(Linear::new(init, flat, 128, true))
        .push(Activation::Relu)
        .push(Linear::new(init, 128, classes, true))
}

/// The fraction of `set` the model classifies correctly, in batches of 250 (the im2col
/// buffer of a batch stays under 32 MiB, so the heap reuses it).
fn accuracy(model: &Sequential, set: &LabeledData, device: Device) -> Result<f64> {
    model.eval();
    let mut hits = 0;
    for batch in DataLoader::new(set, 250).device(device).epoch(0) {
        let batch = batch?;
        let predicted = no_grad(|| model.try_forward(&batch.inputs))?.try_argmax(1, false)?;
        let (predicted, labels) = (predicted.try_to_vec::<i32>()?, batch.targets.try_to_vec::<i32>()?);
        hits += predicted.iter().zip(&labels).filter(|(p, y)| p == y).count();
    }
    model.train(true);
    Ok(hits as f64 / set.len() as f64)
}

/// Train on images of shape `[1, h, w]` (h and w multiples of 4) and report test accuracy.
pub fn train(args: &CommonArgs, train_set: &LabeledData, test_set: &LabeledData) -> Result<Outcome> {
    let (steps, device, seed) = (args.steps_or(4700), args.device, args.seed);
    let (batch_size, lr) = (64, 1e-3);
    let (h, w) = match train_set.feature_shape() {
        &[1, h, w] => (h, w),
        other => {
            let msg = format!("expects images of shape [1, h, w], got {other:?}");
            return Err(plies::autodiff::Error::invalid("fashion_cnn", msg));
        }
    };
    let loader = DataLoader::new(train_set, batch_size).shuffle(seed).drop_last(true).device(device);
    let model = cnn(&mut Init::new(seed).with_device(device), (h, w), train_set.num_classes());
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::adam(lr))?;
    let schedule = Schedule::WarmupCosine { warmup: 0, total: steps as usize, min_factor: 0.05 };

    let (mut run, state) = Run::start("fashion_cnn", args, steps, &model, &mut opt)?;
    run.config(&[
        ("steps", steps.into()),
        ("seed", seed.into()),
        ("device", device.to_string().into()),
        ("params", model.num_params().into()),
        ("batch_size", batch_size.into()),
        ("lr", lr.into()),
        ("train_examples", train_set.len().into()),
        ("test_examples", test_set.len().into()),
    ])?;
    // The losses of the whole run, those before a resume included.
    let mut losses: Vec<f64> = state.metrics.train.iter().map(|&(_, loss)| loss).collect();
    let mut batches = loader.stream_from(state.loader.unwrap_or_default());
    for step in state.step..steps {
        let Some(batch) = batches.next() else { break };
        let batch = batch?;
        let loss = model.try_forward(&batch.inputs)?.try_cross_entropy(&batch.targets)?;
        loss.backward()?;
        opt.set_lr_factor(schedule.factor(step as usize));
        opt.step()?;
        opt.zero_grad();
        losses.push(loss.item());
        run.step(step, loss.item(), batch.len() as u64)?;
        if (step + 1) % (steps / 4).max(1) == 0 && step + 1 < steps {
            run.eval(step, &[("test_accuracy", accuracy(&model, test_set, device)?)])?;
        }
        if run.save_due(step + 1) {
            run.save_state(TrainState::at(step + 1).with_loader(batches.position()), &model, &opt)?;
        }
    }
    let test_accuracy = accuracy(&model, test_set, device)?;
    run.eval(steps.saturating_sub(1), &[("test_accuracy", test_accuracy)])?;
    let result_line = run.finish(&[
        ("final_train_loss", losses.last().copied().unwrap_or(f64::NAN).into()),
        ("test_accuracy", test_accuracy.into()),
        ("epochs", (steps as f64 * batch_size as f64 / train_set.len() as f64).into()),
    ])?;
    Ok(Outcome { losses, test_accuracy, result_line })
}

//! Quickstart: a two-layer perceptron learns the 8x8 handwritten digits embedded in Plies (no
//! files needed), trained with Adam on shuffled minibatches, and reports its test accuracy.
//!
//!     cargo run --release --example quickstart
//!     cargo run --release --example quickstart -- --device cpu --steps 2000 --seed 1 --out runs/qs
//!
//! The progress bar shows the loss and examples per second; `metrics.jsonl` and `loss.png`
//! land in the output folder (`runs/quickstart`), and the last line on stdout is the result:
//! `result: {"name":"quickstart",...,"test_accuracy":0.97...}`.
//!
//! At the end a table on stderr shows each layer's bytes of parameters, gradients, Adam state
//! and saved activations, and the backend's peak; `metrics.jsonl` has the totals per step.
//!
//! `--save-every 100` saves the training state every 100 steps; after a kill,
//! `--resume runs/quickstart` goes on from the last one with the same losses.

use plies::autodiff::Result;
use plies::nn::checkpoint::TrainState;
use plies::nn::data::{digits, DataLoader, LabeledData};
use plies::nn::prelude::*;
use plies::nn::train::{parse_common, CommonArgs, Run};
use plies::nn::MemoryReport;

fn main() {
    // Registers the GPU backend, so that `--device gpu` (or PLIES_DEVICE=gpu) can open it.
    plies::init();
    let args = parse_common("A two-layer perceptron on the embedded 8x8 digits");
    match train(&args) {
        Ok(outcome) => println!("{}", outcome.result_line),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// What a run leaves behind besides its output folder.
pub struct Outcome {
    /// The training loss of every step.
    pub losses: Vec<f64>,
    pub test_accuracy: f64,
    pub result_line: String,
}

/// The fraction of `set` the model classifies correctly.
fn accuracy(model: &Mlp, set: &LabeledData, device: Device) -> Result<f64> {
    let batch = set.to_batch(device)?;
    let logits = no_grad(|| model.try_forward(&batch.inputs))?;
    let predicted = logits.try_argmax(1, false)?.try_to_vec::<i32>()?;
    let hits = predicted.iter().zip(set.labels()).filter(|(p, y)| p == y).count();
    Ok(hits as f64 / set.len() as f64)
}

pub fn train(args: &CommonArgs) -> Result<Outcome> {
    let (steps, device, seed) = (args.steps_or(1000), args.device, args.seed);
    let (batch_size, lr, hidden) = (64, 3e-3, 128);

    // 1797 images of 64 pixels in 0..16, scaled to 0..1; a fifth of each class is held out.
    let data = digits::load()?.scaled(1.0 / digits::MAX_PIXEL);
    let (train_set, test_set) = data.split(0.2, seed)?;
    let loader = DataLoader::new(&train_set, batch_size).shuffle(seed).drop_last(true).device(device);

    let mut init = Init::new(seed).with_device(device);
    let model = Mlp::new(&mut init, &[data.feature_len(), hidden, data.num_classes()], Activation::Relu);
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::adam(lr))?;

    // With --resume, this restores the model and optimizer and returns where the run stood.
    let (mut run, state) = Run::start("quickstart", args, steps, &model, &mut opt)?;
    run.config(&[
        ("steps", steps.into()),
        ("seed", seed.into()),
        ("device", device.to_string().into()),
        ("hidden", hidden.into()),
        ("batch_size", batch_size.into()),
        ("lr", lr.into()),
    ])?;
    // The losses of the whole run, those before a resume included.
    let mut losses: Vec<f64> = state.metrics.train.iter().map(|&(_, loss)| loss).collect();
    let mut batches = loader.stream_from(state.loader.unwrap_or_default());
    for step in state.step..steps {
        let Some(batch) = batches.next() else { break };
        let batch = batch?;
        let loss = model.try_forward(&batch.inputs)?.try_cross_entropy(&batch.targets)?;
        // Per-layer bytes while the graph is alive; `finish` prints the last step's table.
        let memory = MemoryReport::measure(&model, Some(&opt), &loss)?;
        loss.backward()?;
        opt.step()?;
        opt.zero_grad();
        losses.push(loss.item());
        run.step(step, loss.item(), batch.len() as u64)?;
        run.memory(step, &memory)?;
        if (step + 1) % 200 == 0 {
            run.eval(step, &[("test_accuracy", accuracy(&model, &test_set, device)?)])?;
        }
        if run.save_due(step + 1) {
            run.save_state(TrainState::at(step + 1).with_loader(batches.position()), &model, &opt)?;
        }
    }
    let test_accuracy = accuracy(&model, &test_set, device)?;
    let result_line = run.finish(&[
        ("final_train_loss", losses.last().copied().unwrap_or(f64::NAN).into()),
        ("test_accuracy", test_accuracy.into()),
    ])?;
    Ok(Outcome { losses, test_accuracy, result_line })
}

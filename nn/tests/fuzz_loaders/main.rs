//! Every loader survives garbage: each file format Plies reads gets at least 10,000 mutated
//! or random inputs (see `mutate.rs`). No case may panic, hang, or allocate past the bound its
//! format states; a rejected file's error must name the file and a key or byte offset; a file
//! that loads must give back exactly what it holds (NaN and Inf payloads included).
//!
//! A new format is one more `impl Format` and one more `#[test]` line at the bottom; the
//! harness (inputs, watchdog, allocation bound, error checks) is `harness.rs`.
//! Case counts and the distinct error kinds go to the real stderr, past the harness.

mod checkpoints;
mod datasets;
mod harness;
mod states;

pub use harness::*;

#[test]
fn safetensors_tensors() {
    run(&checkpoints::Tensors);
}

#[test]
fn safetensors_model_state_dict() {
    run(&checkpoints::StateDict::new());
}

#[test]
fn safetensors_optimizer_state() {
    run(&checkpoints::OptimizerState::new());
}

#[test]
fn safetensors_gpt_with_config() {
    run(&checkpoints::GptFile::new());
}

#[test]
fn idx() {
    run(&datasets::Idx);
}

#[test]
fn idx_gzip() {
    run(&datasets::Gzipped { inner: datasets::Idx, name: "idx gzip", file_name: "train-images-idx3-ubyte.gz" });
}

#[test]
fn mnist_labels() {
    run(&datasets::MnistLabels::new());
}

#[test]
fn digits_csv() {
    run(&datasets::Digits);
}

#[test]
fn digits_csv_gzip() {
    run(&datasets::Gzipped { inner: datasets::Digits, name: "digits csv gzip", file_name: "digits.csv.gz" });
}

#[test]
fn text() {
    run(&datasets::Text);
}

#[test]
fn training_state() {
    run(&states::States::new());
}

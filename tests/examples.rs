//! Smoke tests of the examples: a few steps of each example's training function on tiny
//! settings, checking that the loss falls, that the run leaves its log, plot and result line,
//! and that a seed reproduces a run. The full runs are not tests (README's Examples section
//! lists their figures). Each example is compiled into this test as a module.

#[allow(dead_code)]
#[path = "../examples/quickstart.rs"]
mod quickstart;

#[allow(dead_code)]
#[path = "../examples/char_gpt.rs"]
mod char_gpt;

#[allow(dead_code)]
#[path = "../examples/fashion_cnn.rs"]
mod fashion_cnn;

#[allow(dead_code)]
#[path = "../examples/tpsgd.rs"]
mod tpsgd;

#[allow(dead_code)]
#[path = "../examples/grow.rs"]
mod grow;

#[allow(dead_code)]
#[path = "../examples/custom_module.rs"]
mod custom_module;

#[allow(dead_code)]
#[path = "../examples/lora_finetune.rs"]
mod lora_finetune;

#[allow(dead_code)]
#[path = "../examples/ist.rs"]
mod ist;

#[allow(dead_code)]
#[path = "../examples/mola.rs"]
mod mola;

use clap::Parser;
use plies::autodiff::Device;
use plies::nn::checkpoint::load_gpt;
use plies::nn::data::{digits, CharDataset};
use plies::nn::train::CommonArgs;
use plies::nn::{Init, Layer, Module};
use std::path::Path;

#[path = "../nn/tests/scratch/mod.rs"]
mod scratch;
use scratch::Scratch;

/// The tpsgd example measures activation memory with the process-wide count of live CPU bytes,
/// which another example training on a parallel test thread would inflate: the examples run one
/// at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The run's folder holds a JSONL log whose last record is the result, and a PNG plot; the
/// result line is `result: ` and the same JSON object.
fn check_outputs(dir: &Path, result_line: &str, name: &str) -> serde_json::Value {
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records[0]["event"], "config");
    assert!(records.iter().any(|r| r["loss"].is_number()), "steps are logged");
    assert_eq!(records.last().unwrap()["event"], "result");
    let png = std::fs::read(dir.join("loss.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let json = result_line.strip_prefix("result: ").unwrap_or_else(|| panic!("not a result line: {result_line}"));
    let result: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(result["name"], name);
    result
}

fn common(out: &Path, steps: u64, seed: u64) -> CommonArgs {
    CommonArgs {
        device: Device::Cpu,
        steps: Some(steps),
        seed,
        out: Some(out.to_path_buf()),
        save_every: None,
        resume: None,
    }
}

#[test]
fn quickstart_learns_the_digits_and_a_seed_reproduces_it() {
    let _serial = serial();
    let dir = Scratch::new("quickstart");
    let a = quickstart::train(&common(&dir.join("a"), 60, 3)).unwrap();
    assert_eq!(a.losses.len(), 60);
    assert!(mean(&a.losses[50..]) < 0.5 * mean(&a.losses[..10]), "loss falls: {:?}", a.losses);
    assert!(a.test_accuracy > 0.8, "test accuracy after 60 steps: {}", a.test_accuracy);
    let result = check_outputs(&dir.join("a"), &a.result_line, "quickstart");
    assert_eq!(result["test_accuracy"].as_f64(), Some(a.test_accuracy));

    let b = quickstart::train(&common(&dir.join("b"), 60, 3)).unwrap();
    assert_eq!(a.losses, b.losses, "same seed, same losses");
    let c = quickstart::train(&common(&dir.join("c"), 5, 4)).unwrap();
    assert_ne!(a.losses[..5], c.losses[..], "another seed, other losses");
}

#[test]
fn quickstart_and_char_gpt_resume_from_their_training_state_with_the_same_losses() {
    let _serial = serial();
    let dir = Scratch::new("resume");
    let whole = quickstart::train(&common(&dir.join("whole"), 30, 2)).unwrap();
    let part = dir.join("part");
    quickstart::train(&CommonArgs { save_every: Some(10), ..common(&part, 30, 2) }).unwrap();
    // As if killed between the saves at 20 and 30: the newest state never made it.
    std::fs::remove_file(part.join("state-30.safetensors")).unwrap();
    let resumed = quickstart::train(&CommonArgs { resume: Some(part.clone()), ..common(&part, 30, 2) }).unwrap();
    assert_eq!(resumed.losses, whole.losses);
    assert_eq!(resumed.test_accuracy, whole.test_accuracy);

    let out = dir.join("gpt").display().to_string();
    #[rustfmt::skip]
    let flags = ["char_gpt", "--steps", "8", "--seed", "3", "--out", &out, "--d-model", "16", "--layers", "1",
        "--heads", "2", "--context", "8", "--batch-size", "4", "--eval-every", "4", "--val-windows", "4",
        "--sample-chars", "10"];
    let whole = char_gpt::train(&char_gpt::Args::try_parse_from(flags).unwrap()).unwrap();
    let saving = char_gpt::Args::try_parse_from(flags.iter().copied().chain(["--save-every", "4"])).unwrap();
    char_gpt::train(&saving).unwrap();
    std::fs::remove_file(dir.join("gpt/state-8.safetensors")).unwrap();
    let resume = char_gpt::Args::try_parse_from(flags.iter().copied().chain(["--resume", &out])).unwrap();
    let resumed = char_gpt::train(&resume).unwrap();
    assert_eq!(resumed.losses, whole.losses);
    assert_eq!((resumed.val_loss, resumed.sample), (whole.val_loss, whole.sample));
}

#[test]
fn char_gpt_learns_saves_a_checkpoint_that_reloads_and_samples() {
    let _serial = serial();
    let dir = Scratch::new("char_gpt");
    let out = dir.display().to_string();
    #[rustfmt::skip]
    let args = char_gpt::Args::try_parse_from([
        "char_gpt", "--steps", "12", "--seed", "5", "--out", &out, "--d-model", "32", "--layers", "1",
        "--heads", "2", "--context", "16", "--batch-size", "8", "--lr", "1e-2", "--eval-every", "6",
        "--val-windows", "12", "--sample-chars", "30", "--prompt", "KING",
    ])
    .unwrap();
    let run = char_gpt::train(&args).unwrap();
    assert_eq!(run.losses.len(), 12);
    assert!(mean(&run.losses[9..]) < mean(&run.losses[..3]) - 0.3, "loss falls: {:?}", run.losses);
    let result = check_outputs(&dir, &run.result_line, "char_gpt");
    assert_eq!(result["val_loss"].as_f64(), Some(run.val_loss));
    assert!(run.val_loss.is_finite() && run.val_loss < (74f64).ln() + 0.5, "val loss {}", run.val_loss);

    // The checkpoint rebuilds the model, which gives the same validation loss on the same windows.
    let (model, meta) = load_gpt(&run.checkpoint, &mut Init::new(99)).unwrap();
    assert_eq!((model.config.d_model, model.config.n_layer, model.config.context), (32, 1, 16));
    let data = CharDataset::shakespeare();
    let vocab: String = serde_json::from_str(&meta["vocab"]).unwrap();
    assert_eq!(vocab.chars().collect::<Vec<_>>(), data.vocab().chars());
    let (_, val) = data.split(0.1).unwrap();
    let again = char_gpt::val_loss(&model, &val, 12, 5, Device::Cpu).unwrap();
    assert!((again - run.val_loss).abs() < 1e-6, "reloaded {again}, trained {}", run.val_loss);

    assert!(run.sample.starts_with("KING"));
    assert_eq!(run.sample.chars().count(), 4 + 30);

    let again = char_gpt::train(&args).unwrap();
    assert_eq!(run.losses, again.losses, "same seed, same losses");
    assert_eq!(run.sample, again.sample, "same seed, same sample");
}

#[test]
fn char_gpt_refuses_heads_that_do_not_divide_the_width() {
    let _serial = serial();
    let dir = Scratch::new("char_gpt_heads");
    let out = dir.display().to_string();
    let args = char_gpt::Args::try_parse_from(["char_gpt", "--out", &out, "--d-model", "30", "--heads", "4"]).unwrap();
    let e = char_gpt::train(&args).err().unwrap().to_string();
    assert!(e.contains("--d-model 30") && e.contains("--heads 4"), "{e}");
}

#[test]
fn fashion_cnn_trains_on_small_images_and_explains_missing_data() {
    let _serial = serial();
    let dir = Scratch::new("fashion_cnn");
    let data = digits::load().unwrap().scaled(1.0 / digits::MAX_PIXEL).reshaped(&[1, 8, 8]).unwrap();
    let (train, test) = data.split(0.2, 0).unwrap();
    let run = fashion_cnn::train(&common(&dir, 30, 1), &train, &test).unwrap();
    assert!(mean(&run.losses[25..]) < mean(&run.losses[..5]) - 0.03, "loss falls: {:?}", run.losses);
    assert!(run.test_accuracy > 0.4, "test accuracy after 30 steps: {}", run.test_accuracy);
    check_outputs(&dir, &run.result_line, "fashion_cnn");
    let model = fashion_cnn::cnn(&mut Init::new(0), (28, 28), 10);
    assert_eq!(model.num_params(), 16 * 9 + 16 + 32 * 16 * 9 + 32 + 1568 * 128 + 128 + 128 * 10 + 10);

    let e = fashion_cnn::load(&dir.join("no-such-folder")).err().unwrap().to_string();
    assert!(e.contains("scripts/fetch_data.sh"), "{e}");
}

#[test]
fn tpsgd_compares_the_four_methods_and_measures_memory_against_depth() {
    let _serial = serial();
    let dir = Scratch::new("tpsgd");
    let out = dir.display().to_string();
    #[rustfmt::skip]
    let args = tpsgd::Args::try_parse_from([
        "tpsgd", "--out", &out, "--steps", "60", "--seeds", "2", "--hidden", "32,32", "--lrs", "1e-2",
        "--depths", "2,4",
    ])
    .unwrap();
    let run = tpsgd::train(&args).unwrap();
    let result = check_outputs(&dir, &run.result_line, "tpsgd");
    for m in tpsgd::METHODS {
        let runs = &run.chosen[tpsgd::METHODS.iter().position(|&x| x == m).unwrap()];
        assert_eq!(runs.len(), 2, "{m:?}: one run per seed");
        assert_eq!(runs[0].losses.len(), 60);
        assert!(mean(&runs[0].losses[50..]) < mean(&runs[0].losses[..10]), "{m:?} loss falls: {:?}", runs[0].losses);
        assert!(run.mean_test(m) > 0.3, "{m:?}: test accuracy after 60 steps {} (chance 0.1)", run.mean_test(m));
        assert_eq!(result[&format!("{}_test_accuracy", m.name())].as_f64(), Some(run.mean_test(m)));
    }
    // Backprop's activations grow with depth, tpSGD's do not.
    let bytes = |d: usize, m: tpsgd::Method| run.depth.iter().find(|e| e.0 == d && e.1 == m).unwrap().2.unwrap();
    assert!(bytes(4, tpsgd::Method::Backprop) > bytes(2, tpsgd::Method::Backprop));
    assert_eq!(bytes(4, tpsgd::Method::TpSgd), bytes(2, tpsgd::Method::TpSgd));
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(md.contains("| tpsgd |") && md.contains("| output_only |"), "{md}");
    for png in ["accuracy.png", "memory.png"] {
        assert_eq!(&std::fs::read(dir.join(png)).unwrap()[..4], b"\x89PNG");
    }
}

#[test]
fn grow_adds_stages_whose_validation_loss_falls_and_mixes_two_specialists() {
    let _serial = serial();
    let dir = Scratch::new("grow");
    let out = dir.display().to_string();
    #[rustfmt::skip]
    let args = grow::Args::try_parse_from([
        "grow", "--out", &out, "--stage-steps", "30", "--stages", "2", "--blocks-per-stage", "1",
        "--d-model", "16", "--n-head", "2", "--context", "16", "--batch-size", "4", "--eval-every", "30",
        "--eval-windows", "8", "--specialist-blocks", "1", "--specialist-steps", "20", "--lr", "1e-2",
    ])
    .unwrap();
    let o = grow::train(&args).unwrap();
    check_outputs(&dir, &o.result_line, "grow");
    assert_eq!(o.stage_val.len(), 2, "one validation loss per stage");
    assert!(o.stage_val[1] < o.stage_val[0], "the second stage lowers the validation loss: {:?}", o.stage_val);
    assert_eq!(o.grown.trainable.len(), 2);
    // The second stage trains one new block and the head; the first also trained positions.
    assert!(o.grown.trainable[1] < o.grown.trainable[0], "{:?}", o.grown.trainable);
    for r in [&o.grown, &o.glyph, &o.learned] {
        assert!(r.final_val().is_finite() && r.final_val() < (65f64).ln(), "{}: {}", r.name, r.final_val());
    }
    // A learned embedding trains more parameters than the frozen glyph table.
    assert!(o.learned.trainable[0] > o.glyph.trainable[0]);
    // The mixture is evaluated on both halves and their union, beside each specialist.
    assert!(o.mixture.iter().flatten().all(|v| v.is_finite()), "{:?}", o.mixture);
    for k in 1..=2 {
        let ck = dir.join(format!("stage{k}.safetensors"));
        assert!(ck.exists(), "{} is written", ck.display());
    }
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(md.contains("grown") && md.contains("mixture"), "{md}");
}

/// The example asserts itself that the reloaded model predicts as the trained one did.
#[test]
fn custom_module_trains_saves_and_reloads() {
    let _serial = serial();
    custom_module::main().unwrap();
}

#[test]
fn lora_finetune_compares_full_lora_and_dora_on_one_base_and_saves_adapters_that_reload() {
    let _serial = serial();
    let dir = Scratch::new("lora_finetune");
    let out = dir.join("run").display().to_string();
    #[rustfmt::skip]
    let flags = ["lora_finetune", "--out", &out, "--steps", "12", "--pretrain-steps", "30", "--seed", "2",
        "--d-model", "16", "--layers", "1", "--heads", "2", "--context", "16", "--batch-size", "8",
        "--pretrain-lr", "1e-2", "--full-lr", "1e-2", "--lora-lr", "2e-2", "--eval-every", "6",
        "--val-windows", "8"];
    let args = lora_finetune::Args::try_parse_from(flags).unwrap();
    let run = lora_finetune::train(&args).unwrap();
    assert!(run.pretrained);
    let result = check_outputs(&dir.join("run"), &run.result_line, "lora_finetune");
    let [full, lora, dora] = [0, 1, 2].map(|i| &run.methods[i]);
    assert_eq!(full.trainable, {
        let (model, _) = load_gpt(&run.base_path, &mut Init::new(0)).unwrap();
        model.num_params()
    });
    // r 8, d 16, one block: qkv A [8, 16] B [48, 8], proj [8, 16] [16, 8], fc1 [8, 16] [64, 8],
    // fc2 [8, 64] [16, 8]; DoRA adds a magnitude per output row.
    assert_eq!(lora.trainable, 512 + 256 + 640 + 640);
    assert_eq!(dora.trainable, lora.trainable + 48 + 16 + 64 + 16);
    for s in &run.methods {
        assert_eq!(s.losses.len(), 12);
        assert!(s.finetune_val.is_finite() && s.pretrain_val.is_finite(), "{:?}", s.method);
        let name = s.method.name();
        assert_eq!(result[&format!("{name}_finetune_val_loss")].as_f64(), Some(s.finetune_val));
        assert_eq!(result[&format!("{name}_memory_bytes")].as_u64(), Some(s.accounted_bytes()));
        // Every step met the same first batch from the same base.
        assert_eq!(s.losses[0], full.losses[0], "{name}: LoRA and DoRA start equal to the base");
    }
    assert!(full.finetune_val < run.base_val.0, "full fine-tuning lowers the fine-tuning loss");
    assert!(lora.finetune_val < run.base_val.0, "LoRA lowers the fine-tuning loss");
    // A frozen base holds no gradients and no optimizer state (activations are another
    // matter: at this width they dominate, and the adapters add their own).
    let (tf, tl) = (full.memory.totals(), lora.memory.totals());
    assert_eq!(tl.param_bytes, tf.param_bytes + 4 * lora.trainable as u64);
    assert_eq!(tf.grad_bytes, 4 * full.trainable as u64);
    assert_eq!(tl.grad_bytes, 4 * lora.trainable as u64);
    assert_eq!(tl.optimizer_bytes, 2 * tl.grad_bytes, "AdamW: two moments per trainable value");
    assert!(tl.grad_bytes + tl.optimizer_bytes < (tf.grad_bytes + tf.optimizer_bytes) / 2);
    let md = std::fs::read_to_string(dir.join("run/results.md")).unwrap();
    for row in ["| base (before fine-tuning) |", "| full |", "| lora |", "| dora |"] {
        assert!(md.contains(row), "{row} in {md}");
    }
    for png in ["finetune.png", "forgetting.png"] {
        assert_eq!(&std::fs::read(dir.join("run").join(png)).unwrap()[..4], b"\x89PNG");
    }
    assert!(run.peft_check.contains("bench/peft_round_trip.py") && run.peft_check.contains("dora_adapter"));

    // The saved LoRA adapter on the saved base gives the reported loss on the saved windows.
    let (model, _) = load_gpt(&run.base_path, &mut Init::new(0)).unwrap();
    plies::peft::lora::Lora::from_pretrained(&model, dir.join("run/lora_adapter"), &mut Init::new(0)).unwrap();
    let file = plies::nn::checkpoint::load_tensors(dir.join("run/finetune_val.safetensors"), Device::Cpu).unwrap();
    let tokens = plies::autodiff::Tensor::new(file.tensors["tokens"].clone());
    assert_eq!(tokens.dims(), [8, 17]);
    let (x, y) = (tokens.narrow(1, 0, 16).contiguous(), tokens.narrow(1, 1, 16).contiguous());
    model.eval();
    let again = plies::autodiff::no_grad(|| model.try_forward(&x)?.try_cross_entropy(&y)).unwrap().item();
    assert!(
        (again - lora.finetune_val).abs() < 1e-5 * lora.finetune_val,
        "reloaded {again}, trained {}",
        lora.finetune_val
    );

    // A second run reuses the cached base and repeats the losses; another text counts the
    // characters the base does not know.
    let again = lora_finetune::train(&args).unwrap();
    assert!(!again.pretrained);
    assert_eq!(again.methods[1].losses, lora.losses, "same seed, same losses");
    let text = dir.join("other.txt");
    let body = "Call me Ishmael. Some years ago \u{e9}t\u{e9}, never mind how long precisely. ".repeat(20);
    std::fs::write(&text, format!("{body}\u{20ac}")).unwrap();
    let other = text.display().to_string();
    let args = lora_finetune::Args::try_parse_from(flags.iter().copied().chain(["--finetune-text", &other])).unwrap();
    let moby = lora_finetune::train(&args).unwrap();
    assert!(!moby.pretrained);
    assert_eq!(moby.oov.count, 2 * 20 + 1);
    assert_eq!(moby.oov.chars.get(&'\u{e9}'), Some(&40));
    assert!(std::fs::read_to_string(dir.join("run/results.md"))
        .unwrap()
        .contains("outside the base vocabulary (mapped to id"));
}

#[test]
fn ist_runs_every_method_paired_and_logs_scores_and_selections() {
    let _serial = serial();
    let dir = Scratch::new("ist");
    let argv = [
        "ist",
        "--pretrain-steps",
        "30",
        "--natural-steps",
        "10",
        "--layers",
        "4",
        "--d-model",
        "32",
        "--heads",
        "2",
        "--context",
        "32",
        "--planted",
        "1,2",
        "--n-upd",
        "1",
        "--eval-windows",
        "4",
        "--seeds",
        "2",
    ];
    let mut args = ist::Args::parse_from(argv);
    args.common = common(&dir.join("a"), 30, 0);
    let a = ist::train(&args).unwrap();
    let result = check_outputs(&dir.join("a"), &a.result_line, "ist");
    assert_eq!(result["seeds"], 2);
    assert_eq!(a.planted.len(), 4);
    for runs in &a.planted {
        assert_eq!(runs.len(), 2);
        assert!(runs.iter().all(|r| r.final_eval.is_finite() && r.final_eval >= 0.0));
    }
    // IST trained one block per step, RST too; full LoRA every block every step.
    assert_eq!(a.planted[0][0].picks.iter().sum::<u64>(), 30);
    assert_eq!(a.planted[3][0].picks, vec![30; 4]);
    assert_eq!(a.planted[0][0].scores.len(), 1 + 2, "scores at the start and at steps 10, 20");
    assert_eq!(a.planted[0][0].importance.as_ref().map(|v| v.len()), Some(4));
    let log = std::fs::read_to_string(dir.join("a/metrics.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ist_events: Vec<_> = records.iter().filter(|r| r["event"] == "ist").collect();
    assert!(!ist_events.is_empty());
    for e in &ist_events {
        assert_eq!(e["sets"].as_array().unwrap().len(), 3);
        assert_eq!(e["probe_losses"].as_array().unwrap().len(), 3);
        assert_eq!(e["scores"].as_array().unwrap().len(), 4);
    }
    assert!(records.iter().any(|r| r["event"] == "select" && r["method"] == "ist"));
    for f in ["results.md", "planted_kl.png", "ist_scores_seed0.png", "natural_loss.png", "base.safetensors"] {
        assert!(dir.join("a").join(f).is_file(), "{f}");
    }
    // The same seed reproduces the run; the cached base model is reused.
    let b = ist::train(&args).unwrap();
    for (x, y) in a.planted.iter().flatten().zip(b.planted.iter().flatten()) {
        assert_eq!(x.final_eval, y.final_eval, "{:?} seed {}", x.method, x.seed);
        assert_eq!(x.scores, y.scores);
    }
}

#[test]
fn mola_compares_allocations_on_both_tasks() {
    let _serial = serial();
    let dir = Scratch::new("mola");
    let out = dir.display().to_string();
    #[rustfmt::skip]
    let args = mola::Args::try_parse_from([
        "mola", "--out", &out, "--seeds", "2", "--allocations", "2,4;4,2", "--d-model", "16", "--context", "16",
        "--batch-size", "4", "--pretrain-steps", "30", "--run-steps", "25", "--eval-windows", "8", "--heads", "2", "--lr", "1e-2",
    ])
    .unwrap();
    let run = mola::train(&args).unwrap();
    let result = check_outputs(&dir, &run.result_line, "mola");
    assert_eq!(run.runs.len(), 2 * 2 * 2, "tasks x allocations x seeds");
    for r in &run.runs {
        assert_eq!(r.train.len(), 25);
        assert!(r.final_loss.is_finite() && r.final_loss >= 0.0, "{r:?}");
        assert_eq!(r.redundancy.len(), 4);
        // Top-2 of every eval token lands in some expert of each block.
        let per_block: Vec<u64> = r.usage.iter().map(|u| u.iter().sum()).collect();
        assert!(per_block.windows(2).all(|w| w[0] == w[1] && w[0] > 0), "{:?}", r.usage);
        assert!(r.balance.iter().all(|&b| b.is_finite() && b > 0.0), "{:?}", r.balance);
    }
    // The student moves toward the teacher: on the fixed eval windows every distillation run
    // ends below the base model's KL (the Tempest needs more steps than a smoke test has).
    for r in run.runs.iter().filter(|r| r.task == mola::Task::Distill) {
        assert!(r.final_loss < run.base_kl, "{}: {} vs base {}", r.allocation, r.final_loss, run.base_kl);
    }
    // Paired seeds: a seed gives the same result again.
    let again = mola::train(&args).unwrap();
    assert_eq!(again.runs[0].final_loss, run.runs[0].final_loss);
    assert!(result["tempest_24"].as_f64().is_some() && result["distill_best"].is_string(), "{result}");
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(md.contains("| 24 |") && md.contains("Redundancy per block"), "{md}");
    for png in ["balance_distill.png", "redundancy_tempest.png", "train_tempest.png"] {
        assert_eq!(&std::fs::read(dir.join(png)).unwrap()[..4], b"\x89PNG");
    }
}

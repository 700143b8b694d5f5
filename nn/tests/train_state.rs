//! Training states survive a kill: a run killed by SIGKILL and resumed from its last state
//! gives the same losses and parameters, bit for bit, as a run that was never stopped; a state
//! file cut short by a crash is skipped, with a warning naming it, for the one before it.
//!
//! The killed run is this test binary itself, started again with the test's name as filter
//! and `CHILD` set, so that it dies as a real process would.

use plies_autodiff::rng::Rng;
use plies_autodiff::Device;
use plies_nn::checkpoint::{Checkpoints, TrainState};
use plies_nn::data::{digits, DataLoader};
use plies_nn::prelude::*;
use plies_nn::train::{CommonArgs, Run};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod scratch;
use scratch::Scratch;

/// Steps between saves; runs are 2N steps long and the child is killed after N + K.
const N: u64 = 10;
const K: u64 = 4;
const CHILD: &str = "PLIES_TRAIN_STATE_CHILD";
/// What the child prints before each step it reports.
const MARK: &str = "child-step ";

/// An MLP with dropout on the digits, AdamW with warmup and cosine decay, shuffled batches
/// and a random input scale drawn by the loop itself: every piece of the training state
/// changes the losses if it is not restored.
fn model(seed: u64) -> Sequential {
    let mut init = Init::new(seed);
    Sequential::new()
        .push(Linear::new(&mut init, 64, 32, true))
        .push(Activation::Relu)
        .push(Dropout::new(&mut init, 0.2))
        .push(Linear::new(&mut init, 32, 10, true))
}

struct Outcome {
    /// Every step's loss, those before a resume included.
    losses: Vec<f64>,
    /// The step the run started with (0, or where it resumed).
    first_step: u64,
    params: Vec<(String, Vec<u32>)>,
}

/// Train for 2N steps into `out`, calling `after_step(steps_done, loss)` after each step (and
/// after its save, when one is due).
fn train(out: &Path, resume: Option<&Path>, save_every: Option<u64>, after_step: &mut dyn FnMut(u64, f64)) -> Outcome {
    let steps = 2 * N;
    let args = CommonArgs {
        device: Device::Cpu,
        steps: Some(steps),
        seed: 7,
        out: Some(out.to_path_buf()),
        save_every,
        resume: resume.map(Path::to_path_buf),
    };
    let data = digits::load().unwrap().scaled(1.0 / digits::MAX_PIXEL);
    let (train_set, _) = data.split(0.2, args.seed).unwrap();
    // 11 batches an epoch: the run crosses an epoch, and N is not at an epoch's start.
    let loader = DataLoader::new(&train_set, 128).shuffle(args.seed).drop_last(true);
    assert_eq!(loader.batches_per_epoch(), 11);
    let model = model(args.seed);
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::adamw(1e-2, 0.01)).unwrap();
    let schedule = Schedule::WarmupCosine { warmup: 3, total: steps as usize, min_factor: 0.1 };

    let (mut run, state) = Run::start("state_test", &args, steps, &model, &mut opt).unwrap();
    run.config(&[("steps", steps.into())]).unwrap();
    let mut rng = state.rng_or("scale", Rng::new(args.seed ^ 0x5ca1e)).unwrap();
    let mut losses: Vec<f64> = state.metrics.train.iter().map(|p| p.1).collect();
    let mut batches = loader.stream_from(state.loader.unwrap_or_default());
    for step in state.step..steps {
        let batch = batches.next().unwrap().unwrap();
        let scale = 0.75 + 0.5 * rng.uniform_f64();
        let logits = model.forward(&batch.inputs.mul_scalar(scale));
        let loss = logits.cross_entropy(&batch.targets);
        loss.backward().unwrap();
        opt.set_lr_factor(schedule.factor(step as usize));
        opt.step().unwrap();
        opt.zero_grad();
        losses.push(loss.item());
        run.step(step, loss.item(), batch.len() as u64).unwrap();
        if run.save_due(step + 1) {
            let state = TrainState::at(step + 1).with_loader(batches.position()).with_rng("scale", &rng);
            run.save_state(state, &model, &opt).unwrap();
        }
        after_step(step + 1, loss.item());
    }
    run.finish(&[]).unwrap();
    let params = model
        .state_dict()
        .into_iter()
        .map(|(k, a)| (k, a.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()))
        .collect();
    Outcome { losses, first_step: state.step, params }
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The (step, loss bits) records of a run's metrics.jsonl. The loss is read from its text
/// with Rust's parser: serde_json's default float parser can be one ulp off.
fn logged_losses(dir: &Path) -> Vec<(u64, u64)> {
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    log.lines()
        .filter(|l| l.contains("\"loss\":"))
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            let text = l.split("\"loss\":").nth(1).unwrap().split([',', '}']).next().unwrap();
            (r["step"].as_u64().unwrap(), text.parse::<f64>().unwrap().to_bits())
        })
        .collect()
}

#[test]
fn a_run_killed_and_resumed_matches_one_never_stopped() {
    if let Ok(dir) = std::env::var(CHILD) {
        // The child: report each step (the loss as exact bits), and after N + K steps wait
        // for the SIGKILL, which finds it with a state saved at N and K steps done past it.
        train(Path::new(&dir), None, Some(N), &mut |done, loss| {
            println!("{MARK}{done} {:016x}", loss.to_bits());
            if done == N + K {
                let _ = std::io::stdin().read(&mut [0u8]);
            }
        });
        return;
    }
    let scratch = Scratch::new("kill_resume");
    let reference = train(&scratch.join("reference"), None, None, &mut |_, _| {});

    let killed = scratch.join("killed");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["a_run_killed_and_resumed_matches_one_never_stopped", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, &killed)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child_losses = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // The harness may print "test <name> ... " in front of the first report.
        let Some((_, rest)) = line.split_once(MARK) else { continue };
        let (done, loss) = rest.split_once(' ').unwrap();
        child_losses.push(u64::from_str_radix(loss, 16).unwrap());
        assert_eq!(done.parse::<u64>().unwrap(), child_losses.len() as u64);
        if child_losses.len() as u64 == N + K {
            child.kill().unwrap();
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished: {status:?}");
    #[cfg(unix)]
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "SIGKILL");
    assert_eq!(child_losses.len() as u64, N + K, "the child reported N + K steps before the kill");
    assert_eq!(child_losses[..], bits(&reference.losses)[..(N + K) as usize], "the child ran the same steps");
    assert_eq!(std::fs::read_to_string(killed.join("latest")).unwrap().trim(), format!("state-{N}.safetensors"));

    let resumed = train(&killed, Some(&killed), Some(N), &mut |_, _| {});
    assert_eq!(resumed.first_step, N, "resumed from the state saved at step N");
    assert_eq!(bits(&resumed.losses), bits(&reference.losses), "same losses from the resume step on");
    assert_eq!(resumed.params, reference.params, "same final parameters, bit for bit");
    // The log was cut back to the save and goes on: each step once, with the same loss.
    let want: Vec<(u64, u64)> = (0..2 * N).zip(bits(&reference.losses)).collect();
    assert_eq!(logged_losses(&killed), want);
    assert_eq!(logged_losses(&scratch.join("reference")), want);
}

/// A run of 2N steps saving every N, and what its two states hold.
fn two_states(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    train(dir, None, Some(N), &mut |_, _| {});
    let (older, newer) = (dir.join(format!("state-{N}.safetensors")), dir.join(format!("state-{}.safetensors", 2 * N)));
    assert!(older.exists() && newer.exists());
    let bytes = std::fs::read(&newer).unwrap();
    (older, newer, bytes)
}

fn fresh() -> (Sequential, Adam) {
    let m = model(99);
    let opt = Adam::new(m.named_parameters(), AdamConfig::adamw(1e-2, 0.01)).unwrap();
    (m, opt)
}

#[test]
fn a_state_cut_short_falls_back_to_the_one_before_with_a_warning_naming_it() {
    let dir = Scratch::new("truncated");
    let (older, newer, bytes) = two_states(&dir);
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let cuts =
        [0, 1, 7, 8, 8 + header / 2, 8 + header, 8 + header + 1, (8 + header + bytes.len()) / 2, bytes.len() - 1];
    for cut in cuts {
        std::fs::write(&newer, &bytes[..cut]).unwrap();
        let (m, mut opt) = fresh();
        let r = Checkpoints::load_latest(&*dir, &m, &mut opt).unwrap();
        assert_eq!(r.path, older, "cut at byte {cut}");
        assert_eq!(r.state.step, N);
        assert_eq!(r.state.metrics.train.len() as u64, N);
        assert_eq!(r.skipped.len(), 1, "cut at byte {cut}: {:?}", r.skipped);
        assert_eq!(r.skipped[0].0, newer);
        let e = r.skipped[0].1.to_string();
        assert!(e.contains(&newer.display().to_string()), "cut at byte {cut}: the warning names the file: {e}");
    }

    // A crash during an atomic save leaves a temporary file, never a cut state under its name.
    std::fs::write(&newer, &bytes).unwrap();
    std::fs::write(dir.join(format!("state-{}.safetensors.tmp", 3 * N)), &bytes[..bytes.len() / 3]).unwrap();
    let (m, mut opt) = fresh();
    let r = Checkpoints::load_latest(&*dir, &m, &mut opt).unwrap();
    assert_eq!((r.path, r.skipped.len()), (newer.clone(), 0));

    // A garbled `latest` is reported, and the newest state file is found without it.
    std::fs::write(dir.join("latest"), "state-x.safetensors\n").unwrap();
    let r = Checkpoints::load_latest(&*dir, &m, &mut opt).unwrap();
    assert_eq!(r.path, newer);
    assert!(r.skipped[0].1.to_string().contains("latest"), "{:?}", r.skipped);

    // With every state cut, the error lists them all.
    std::fs::write(&newer, &bytes[..100]).unwrap();
    std::fs::write(&older, &bytes[..50]).unwrap();
    let e = Checkpoints::load_latest(&*dir, &m, &mut opt).unwrap_err().to_string();
    assert!(e.contains(&newer.display().to_string()) && e.contains(&older.display().to_string()), "{e}");
}

#[test]
fn a_state_that_does_not_fit_the_model_names_the_file_and_key_and_assigns_nothing() {
    let dir = Scratch::new("misfit");
    let (_, newer, _) = two_states(&dir);
    let mut init = Init::new(1);
    let wider = Sequential::new()
        .push(Linear::new(&mut init, 64, 48, true))
        .push(Activation::Relu)
        .push(Dropout::new(&mut init, 0.2))
        .push(Linear::new(&mut init, 48, 10, true));
    let before = wider.state_dict()[0].1.to_vec::<f32>().unwrap();
    let mut opt = Adam::new(wider.named_parameters(), AdamConfig::adamw(1e-2, 0.01)).unwrap();
    let e = TrainState::load(&newer, &wider, &mut opt).unwrap_err().to_string();
    assert!(e.contains(&newer.display().to_string()) && e.contains("`0.weight`"), "{e}");
    assert_eq!(wider.state_dict()[0].1.to_vec::<f32>().unwrap(), before, "nothing assigned");

    // The same parameters with the dropout elsewhere: the state's generator `2.rng` fits no
    // generator of the model.
    let mut init = Init::new(1);
    let moved = Sequential::new()
        .push(Linear::new(&mut init, 64, 32, true))
        .push(Dropout::new(&mut init, 0.2))
        .push(Activation::Relu)
        .push(Linear::new(&mut init, 32, 10, true));
    let mut opt = Adam::new(moved.named_parameters(), AdamConfig::adamw(1e-2, 0.01)).unwrap();
    let e = TrainState::load(&newer, &moved, &mut opt).unwrap_err().to_string();
    assert!(e.contains(&newer.display().to_string()) && e.contains("module_rngs") && e.contains("2.rng"), "{e}");
    assert_eq!(opt.step_count("0.weight"), 0, "nothing assigned");

    // Checkpoints keeps the last two states only.
    let names: Vec<String> = std::fs::read_dir(&*dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.starts_with("state-"))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn a_stream_resumed_from_its_position_yields_the_same_batches() {
    let data = digits::load().unwrap();
    let small = data.subset(&(0..23).collect::<Vec<_>>()).unwrap();
    for drop_last in [false, true] {
        // 23 examples in batches of 5: a partial last batch, kept or dropped.
        let loader = DataLoader::new(&small, 5).shuffle(3).drop_last(drop_last);
        let targets = |b: plies_autodiff::Result<plies_nn::data::Batch>| b.unwrap().targets.to_vec::<i32>();
        for taken in 0..12 {
            let mut a = loader.stream();
            a.by_ref().take(taken).for_each(|b| drop(b.unwrap()));
            let mut b = loader.stream_from(a.position());
            for i in 0..7 {
                assert_eq!(targets(a.next().unwrap()), targets(b.next().unwrap()), "after {taken} batches, +{i}");
            }
        }
    }
}

//! Training UX: JSONL records parse back, PNG plots are valid images with text drawn, the
//! common flags parse, and a `Run` leaves a log, a plot and a result line.

use plies_autodiff::Device;
use plies_nn::train::{json_object, CommonArgs, LinePlot, MetricsLog, Progress, ProgressMode, Run, Value};
use serde_json::Value as Json;
use std::path::PathBuf;

mod scratch;
use scratch::Scratch;

#[test]
fn json_objects_parse_back_exactly() {
    let tricky = "quote \" backslash \\ newline \n tab \t bell \u{7} é ∑";
    let line = json_object(&[
        ("step", 12u64.into()),
        ("loss", 0.1f64.into()),
        ("lr", 3e-7f64.into()),
        ("big", 1.5e300f64.into()),
        ("f32", 0.1f32.into()),
        ("nan", f64::NAN.into()),
        ("inf", f64::NEG_INFINITY.into()),
        ("neg", (-4i32).into()),
        ("ok", true.into()),
        ("text", tricky.into()),
        ("scores", vec![0.5f64, f64::NAN, -2.0].into()),
        ("layers", vec![1usize, 5].into()),
        ("empty", Vec::<u64>::new().into()),
    ]);
    assert!(!line.contains('\n'));
    let v: Json = serde_json::from_str(&line).unwrap();
    assert_eq!(v["step"], 12);
    assert_eq!(v["loss"].as_f64(), Some(0.1));
    assert_eq!(v["lr"].as_f64(), Some(3e-7));
    assert_eq!(v["big"].as_f64(), Some(1.5e300));
    assert_eq!(v["f32"].as_f64(), Some(0.1));
    assert!(v["nan"].is_null() && v["inf"].is_null());
    assert_eq!(v["neg"], -4);
    assert_eq!(v["ok"], true);
    assert_eq!(v["text"], tricky);
    assert_eq!(v["scores"], serde_json::json!([0.5, null, -2.0]));
    assert_eq!(v["layers"], serde_json::json!([1, 5]));
    assert_eq!(v["empty"], serde_json::json!([]));
    // Keys keep their order.
    assert!(line.starts_with("{\"step\":12,\"loss\":0.1,"), "{line}");
}

#[test]
fn metrics_log_writes_one_object_per_line() {
    let dir = Scratch::new("log");
    let path = dir.join("sub/metrics.jsonl");
    let mut log = MetricsLog::create(&path).unwrap();
    for step in 0..5u64 {
        log.write(&[("step", step.into()), ("loss", (1.0 / (step + 1) as f64).into())]).unwrap();
    }
    log.write(&[("event", "done".into())]).unwrap();
    // Flushed line by line: readable while the log is still open.
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Json> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[3]["step"], 3);
    assert_eq!(lines[3]["loss"].as_f64(), Some(0.25));
    assert_eq!(lines[5]["event"], "done");
    drop(log);
    let e = MetricsLog::create("/proc/plies-no-such-dir/m.jsonl").err().unwrap().to_string();
    assert!(e.contains("/proc/plies-no-such-dir"), "{e}");
}

/// Decode a PNG with the png crate: (width, height, RGB bytes).
fn decode(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn count(rgb: &[u8], w: u32, area: (u32, u32, u32, u32), pred: impl Fn(&[u8]) -> bool) -> usize {
    let (x0, y0, x1, y1) = area;
    (y0..y1).flat_map(|y| (x0..x1).map(move |x| ((y * w + x) * 3) as usize)).filter(|&i| pred(&rgb[i..i + 3])).count()
}

#[test]
fn loss_curve_png_is_valid_and_has_text_and_lines() {
    let dir = Scratch::new("plot");
    let path = dir.join("loss.png");
    let train: Vec<(f64, f64)> = (0..200).map(|s| (s as f64, 2.3 * (-(s as f64) / 60.0).exp() + 0.05)).collect();
    let val: Vec<(f64, f64)> =
        (0..=4).map(|k| (k as f64 * 50.0, 2.4 * (-(k as f64) * 50.0 / 60.0).exp() + 0.1)).collect();
    LinePlot::new("digits: loss").series("train", train).series("val_loss", val).write_png(&path).unwrap();
    let (w, h, rgb) = decode(&path);
    assert_eq!((w, h), (800, 500));
    assert!(!dir.join("loss.png.tmp").exists());
    // The title: dark glyph pixels in the top band, centred.
    let dark = |p: &[u8]| p.iter().all(|&c| c < 80);
    assert!(count(&rgb, w, (250, 0, 550, 45), dark) > 100, "no title drawn");
    // Tick labels left of the plot area.
    assert!(count(&rgb, w, (0, 60, 110, 440), dark) > 200, "no y tick labels drawn");
    // Both series colors appear (blue train line, orange validation line).
    let blue = |p: &[u8]| p == [31, 119, 180];
    let orange = |p: &[u8]| p == [255, 127, 14];
    assert!(count(&rgb, w, (0, 0, w, h), blue) > 300);
    assert!(count(&rgb, w, (0, 0, w, h), orange) > 100);
}

#[test]
fn plots_survive_odd_data() {
    let dir = Scratch::new("odd");
    // Log scale with zeros and NaN, a constant series, an empty plot: all render.
    let pts = vec![(0.0, 1.0), (1.0, 0.0), (2.0, f64::NAN), (3.0, 1e-4)];
    LinePlot::new("log").log_y(true).series("a", pts).write_png(dir.join("log.png")).unwrap();
    LinePlot::new("flat").series("c", vec![(5.0, 2.0); 3]).write_png(dir.join("flat.png")).unwrap();
    LinePlot::new("empty").size(320, 200).write_png(dir.join("empty.png")).unwrap();
    assert_eq!(decode(&dir.join("empty.png")).0, 320);
    let e = LinePlot::new("x").write_png("/proc/plies-no-such-dir/x.png").unwrap_err().to_string();
    assert!(e.contains("/proc/plies-no-such-dir"), "{e}");
}

#[test]
fn common_args_parse() {
    let a =
        CommonArgs::try_parse_from(["ex", "--device", "gpu:1", "--steps", "50", "--seed", "9", "--out", "o"]).unwrap();
    assert_eq!(a.device, Device::Gpu(1));
    assert_eq!((a.steps_or(7), a.seed), (50, 9));
    assert_eq!(a.out_dir("digits"), PathBuf::from("o"));
    let b = CommonArgs::try_parse_from(["ex", "--device", "CPU"]).unwrap();
    assert_eq!(b.device, Device::Cpu);
    assert_eq!((b.steps_or(7), b.seed), (7, 0));
    assert_eq!(b.out_dir("digits"), PathBuf::from("runs/digits"));
    let e = CommonArgs::try_parse_from(["ex", "--device", "tpu"]).unwrap_err();
    assert!(e.contains("bad device `tpu`"), "{e}");
    assert!(CommonArgs::try_parse_from(["ex", "--steps", "many"]).is_err());
}

#[test]
fn progress_counts_examples() {
    for mode in [ProgressMode::Quiet, ProgressMode::Lines] {
        let mut p = Progress::with_mode(20, mode);
        for s in 0..20 {
            p.step(s, 1.0 / (s + 1) as f64, 32);
        }
        p.finish();
        assert!(p.examples_per_sec() > 0.0);
        assert!(p.recent_examples_per_sec() > 0.0);
    }
}

#[test]
fn run_writes_log_plot_and_result() {
    let dir = Scratch::new("run");
    let mut run = Run::create("toy", &dir, 30).unwrap().with_progress(Progress::quiet(30));
    run.config(&[("lr", 0.1.into()), ("batch", 16usize.into())]).unwrap();
    for s in 0..30u64 {
        run.step(s, 1.0 / (s + 1) as f64, 16).unwrap();
        if s % 10 == 9 {
            run.eval(s, &[("val_loss", 1.2 / (s + 1) as f64), ("accuracy", 0.5)]).unwrap();
        }
    }
    let line = run.finish(&[("final_loss", 0.033.into()), ("accuracy", Value::Float(0.5))]).unwrap();
    let result: Json = serde_json::from_str(line.strip_prefix("result: ").unwrap()).unwrap();
    assert_eq!(result["name"], "toy");
    assert_eq!(result["final_loss"].as_f64(), Some(0.033));
    let records: Vec<Json> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1 + 30 + 3 + 1);
    assert_eq!(records[0]["event"], "config");
    assert_eq!(records[1]["step"], 0);
    assert!(records[1]["examples_per_sec"].is_number());
    let evals: Vec<&Json> = records.iter().filter(|r| r["event"] == "eval").collect();
    assert_eq!(evals.len(), 3);
    assert_eq!(evals[2]["step"], 29);
    assert_eq!(records.last().unwrap()["event"], "result");
    let (w, h, _) = decode(&dir.join("loss.png"));
    assert_eq!((w, h), (800, 500));
}

/// The data and training tools together: a linear classifier on the digits learns from
/// shuffled batches, and the run leaves its log and plot.
#[test]
fn linear_classifier_learns_digits_end_to_end() {
    use plies_autodiff::{no_grad, rng::Rng, DType, Tensor};
    use plies_nn::data::{digits, DataLoader};
    let dir = Scratch::new("e2e");
    let data = digits::load().unwrap().scaled(1.0 / digits::MAX_PIXEL);
    let (train, test) = data.split(0.25, 3).unwrap();
    let loader = DataLoader::new(&train, 32).shuffle(3).drop_last(true);
    let w = Tensor::param(Tensor::randn([64, 10], 0.0, 0.01, &mut Rng::new(3), DType::F32, Device::Cpu).value());
    let b = Tensor::param(Tensor::zeros([10], DType::F32, Device::Cpu).value());
    let mut run = Run::create("e2e", &dir, 150).unwrap().with_progress(Progress::quiet(150));
    for (step, batch) in (0..150).zip(loader.stream()) {
        let batch = batch.unwrap();
        let loss = batch.inputs.matmul(&w).add(&b).cross_entropy(&batch.targets);
        loss.backward().unwrap();
        no_grad(|| {
            for p in [&w, &b] {
                p.set_value(p.value().sub(&p.grad().unwrap().mul_scalar(0.5).unwrap()).unwrap()).unwrap();
                p.zero_grad();
            }
        });
        run.step(step, loss.item(), batch.len() as u64).unwrap();
    }
    let all = test.to_batch(Device::Cpu).unwrap();
    let pred = all.inputs.matmul(&w).add(&b).argmax(1, false).to_vec::<i32>();
    let acc = pred.iter().zip(test.labels()).filter(|(p, y)| p == y).count() as f64 / test.len() as f64;
    assert!(acc > 0.85, "test accuracy {acc}");
    run.finish(&[("test_accuracy", acc.into())]).unwrap();
    assert!(dir.join("loss.png").is_file());
}

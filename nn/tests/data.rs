//! Datasets and loaders: the embedded digits and text, the IDX reader on generated and broken
//! files, seeded splits and shuffling.

use flate2::write::GzEncoder;
use flate2::Compression;
use plies_autodiff::{DType, Device};
use plies_core::rng::Rng;
use plies_nn::data::idx::{self, IdxArray, IdxData};
use plies_nn::data::{digits, mnist, CharDataset, DataLoader, Dataset, LabeledData, Vocab};
use std::io::Write;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

mod scratch;
use scratch::Scratch;

fn err_text<T: std::fmt::Debug>(r: plies_autodiff::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

// --- digits ---------------------------------------------------------------------------------

#[test]
fn digits_load_shape_values_and_class_counts() {
    let d = digits::load().unwrap();
    assert_eq!(d.len(), 1797);
    assert_eq!(d.feature_shape(), &[64]);
    assert_eq!(d.num_classes(), 10);
    assert!(d.features().iter().all(|&v| (0.0..=16.0).contains(&v) && v.fract() == 0.0));
    assert_eq!(d.features().iter().cloned().fold(0.0, f32::max), 16.0);
    assert_eq!(d.class_counts(), vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    // The first line of the file: a zero.
    let (x, y) = d.example(0);
    assert_eq!(y, 0);
    assert_eq!(&x[..16], &[0., 0., 5., 13., 9., 1., 0., 0., 0., 0., 13., 15., 10., 15., 5., 0.]);
    let scaled = d.clone().scaled(1.0 / digits::MAX_PIXEL);
    assert!(scaled.features().iter().all(|&v| (0.0..=1.0).contains(&v)));
    assert_eq!(d.clone().reshaped(&[1, 8, 8]).unwrap().feature_shape(), &[1, 8, 8]);
    assert!(d.reshaped(&[65]).is_err());
}

#[test]
fn digits_parse_errors_name_the_line_and_field() {
    let good = "0,".repeat(64) + "3\n";
    assert_eq!(digits::parse(good.as_bytes(), "ok.csv").unwrap().labels(), &[3]);
    assert_eq!(digits::parse(&gzip(good.as_bytes()), "ok.csv.gz").unwrap().len(), 1);

    let short = good.clone() + &"1,".repeat(10) + "2\n";
    let e = err_text(digits::parse(short.as_bytes(), "short.csv"));
    assert!(e.contains("short.csv") && e.contains("line 2") && e.contains("11 fields"), "{e}");

    let bad_value = good.clone() + &"0,".repeat(5) + "x," + &"0,".repeat(58) + "1\n";
    let e = err_text(digits::parse(bad_value.as_bytes(), "bad.csv"));
    assert!(e.contains("line 2, field 6") && e.contains("`x`"), "{e}");

    let big_pixel = "17,".to_string() + &"0,".repeat(63) + "1\n";
    assert!(err_text(digits::parse(big_pixel.as_bytes(), "p.csv")).contains("pixel value 17"));
    let bad_label = "0,".repeat(64) + "10\n";
    assert!(err_text(digits::parse(bad_label.as_bytes(), "l.csv")).contains("line 1, field 65"));
    assert!(err_text(digits::parse(b"", "empty.csv")).contains("no examples"));

    let gz = gzip(good.repeat(50).as_bytes());
    let e = err_text(digits::parse(&gz[..gz.len() / 2], "cut.csv.gz"));
    assert!(e.contains("cut.csv.gz") && e.contains("decompressed byte"), "{e}");

    let missing = err_text(digits::load_file("/nonexistent/digits.csv.gz"));
    assert!(missing.contains("/nonexistent/digits.csv.gz"), "{missing}");
}

#[test]
fn stratified_split_is_seeded_and_partitions_the_set() {
    let d = digits::load().unwrap();
    let (train, test) = d.split(0.2, 7).unwrap();
    assert_eq!(train.len() + test.len(), d.len());
    // Each class gives round(0.2 * count) examples to the test set.
    let want: Vec<usize> = d.class_counts().iter().map(|&c| (0.2 * c as f64).round() as usize).collect();
    assert_eq!(test.class_counts(), want);
    let (train2, test2) = d.split(0.2, 7).unwrap();
    assert_eq!((&train, &test), (&train2, &test2));
    let (_, test3) = d.split(0.2, 8).unwrap();
    assert_ne!(test.features(), test3.features());
    assert!(d.split(1.5, 0).is_err());
}

// --- loader ---------------------------------------------------------------------------------

fn toy(n: usize) -> LabeledData {
    let features = (0..n * 2).map(|i| i as f32).collect();
    LabeledData::new(features, &[2], (0..n as i32).map(|i| i % 3).collect(), 3).unwrap()
}

#[test]
fn labeled_data_checks_its_arguments() {
    assert!(LabeledData::new(vec![0.0; 5], &[2], vec![0, 1], 2).is_err());
    let e = err_text(LabeledData::new(vec![0.0; 4], &[2], vec![0, 2], 2));
    assert!(e.contains("label 2 of example 1"), "{e}");
    assert!(toy(3).subset(&[3]).is_err());
}

#[test]
fn loader_batches_in_order_without_shuffle() {
    let d = toy(10);
    let loader = DataLoader::new(&d, 4);
    assert_eq!(loader.batches_per_epoch(), 3);
    let batches: Vec<_> = loader.epoch(0).map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0].inputs.dims(), vec![4, 2]);
    assert_eq!(batches[0].inputs.dtype(), DType::F32);
    assert_eq!(batches[0].targets.dtype(), DType::I32);
    assert_eq!(batches[0].inputs.device(), Device::Cpu);
    assert_eq!(batches[0].inputs.to_vec::<f32>(), vec![0., 1., 2., 3., 4., 5., 6., 7.]);
    assert_eq!(batches[2].len(), 2);
    assert_eq!(batches[2].targets.to_vec::<i32>(), vec![2, 0]);

    let dropping = DataLoader::new(&d, 4).drop_last(true);
    assert_eq!(dropping.batches_per_epoch(), 2);
    assert_eq!(dropping.epoch(0).count(), 2);
    assert_eq!(dropping.epoch(0).len(), 2);
}

#[test]
fn shuffling_is_reproducible_per_seed_and_epoch() {
    let d = toy(50);
    let a = DataLoader::new(&d, 8).shuffle(42);
    let b = DataLoader::new(&d, 8).shuffle(42);
    assert_eq!(a.order(0), b.order(0));
    assert_eq!(a.order(3), b.order(3));
    assert_ne!(a.order(0), a.order(1));
    assert_ne!(a.order(0), DataLoader::new(&d, 8).shuffle(43).order(0));
    let mut seen = a.order(5);
    seen.sort();
    assert_eq!(seen, (0..50).collect::<Vec<_>>());
    // The batches follow the order: labels of batch 0 are those of the first 8 shuffled indices.
    let first = a.epoch(2).next().unwrap().unwrap();
    let want: Vec<i32> = a.order(2)[..8].iter().map(|&i| d.labels()[i]).collect();
    assert_eq!(first.targets.to_vec::<i32>(), want);
    let again = b.epoch(2).next().unwrap().unwrap();
    assert_eq!(first.inputs.to_vec::<f32>(), again.inputs.to_vec::<f32>());
}

#[test]
fn stream_crosses_epochs_and_reports_empty_epochs() {
    let d = toy(10);
    let loader = DataLoader::new(&d, 4).shuffle(1).drop_last(true);
    let mut s = loader.stream();
    let sizes: Vec<usize> = (&mut s).take(5).map(|b| b.unwrap().len()).collect();
    assert_eq!(sizes, vec![4; 5]);
    assert_eq!(s.epoch(), 2);

    let tiny = toy(3);
    let mut s = DataLoader::new(&tiny, 4).drop_last(true).stream();
    let e = err_text(s.next().unwrap());
    assert!(e.contains("no batch") && e.contains("3 examples"), "{e}");
    assert!(s.next().is_none());
}

// --- IDX ------------------------------------------------------------------------------------

#[test]
fn idx_round_trips_every_type_plain_and_gzipped() {
    let arrays = [
        IdxArray::new(vec![2, 3], IdxData::U8(vec![0, 1, 2, 253, 254, 255])).unwrap(),
        IdxArray::new(vec![4], IdxData::I8(vec![-128, -1, 0, 127])).unwrap(),
        IdxArray::new(vec![3], IdxData::I16(vec![-30000, 7, 30000])).unwrap(),
        IdxArray::new(vec![1, 2], IdxData::I32(vec![i32::MIN, 123_456_789])).unwrap(),
        IdxArray::new(vec![2], IdxData::F32(vec![1.5, -0.25])).unwrap(),
        IdxArray::new(vec![1, 1, 2], IdxData::F64(vec![std::f64::consts::PI, -1e300])).unwrap(),
    ];
    for a in &arrays {
        let bytes = a.to_bytes();
        assert_eq!(&idx::parse(&bytes, "a.idx").unwrap(), a);
        assert_eq!(&idx::parse(&gzip(&bytes), "a.idx.gz").unwrap(), a);
    }
    // Big-endian on disk: i16 7 is 00 07.
    assert_eq!(&arrays[2].to_bytes()[10..12], &[0x00, 0x07]);
    let dir = Scratch::new("roundtrip");
    arrays[0].write(dir.join("x.idx")).unwrap();
    assert_eq!(idx::read(dir.join("x.idx")).unwrap(), arrays[0]);
    assert!(IdxArray::new(vec![2, 2], IdxData::U8(vec![0; 3])).is_err());
}

#[test]
fn idx_errors_name_the_file_and_offset() {
    let good = IdxArray::new(vec![2, 3], IdxData::U8(vec![1; 6])).unwrap().to_bytes();
    let check = |bytes: &[u8], name: &str, want: &[&str]| {
        let e = err_text(idx::parse(bytes, name));
        assert!(e.starts_with(name), "{e}");
        for w in want {
            assert!(e.contains(w), "`{w}` not in: {e}");
        }
    };
    check(&[1, 0, 8, 1, 0, 0, 0, 0], "magic.idx", &["byte 0", "bad magic"]);
    check(&[0, 0, 0x0A, 1, 0, 0, 0, 0], "type.idx", &["byte 2", "unknown type code 0x0a"]);
    check(&[0, 0, 8, 0], "rank.idx", &["byte 3", "rank 0"]);
    check(&good[..6], "header.idx", &["byte 6", "ends inside the header", "dimension 0 of 2"]);
    check(&good[..good.len() - 2], "short.idx", &["byte 16", "truncated", "[2, 3] u8", "after 4"]);
    check(&[good.clone(), vec![9]].concat(), "long.idx", &["byte 18", "trailing bytes"]);
    check(&[], "empty.idx", &["byte 0", "magic number"]);
    // A header promising 2^32 * 2^32 * 8 bytes: reported, not allocated.
    check(&[0, 0, 0x0E, 2, 255, 255, 255, 255, 255, 255, 255, 255], "huge.idx", &["overflow"]);
    // A header promising 4 GB in a 20-byte file: truncated, without allocating 4 GB.
    check(&[0, 0, 8, 1, 255, 255, 255, 255, 0, 0, 0, 0], "big.idx", &["truncated", "after 4"]);

    let gz = gzip(&IdxArray::new(vec![1000], IdxData::I32((0..1000).collect())).unwrap().to_bytes());
    check(&gz[..gz.len() / 2], "cut.idx.gz", &["(decompressed)", "cannot decompress"]);
    let mut corrupt = gz.clone();
    for b in &mut corrupt[20..40] {
        *b ^= 0x5a;
    }
    check(&corrupt, "corrupt.idx.gz", &["(decompressed)"]);

    let e = err_text(idx::read("/nonexistent/x-idx1-ubyte"));
    assert!(e.contains("/nonexistent/x-idx1-ubyte"), "{e}");
}

fn write_mnist(dir: &std::path::Path, prefix: &str, n: usize, labels: Vec<u8>, zip: bool) {
    let images = IdxArray::new(vec![n, 4, 5], IdxData::U8((0..n * 20).map(|i| (i * 13 % 256) as u8).collect()));
    let labels = IdxArray::new(vec![labels.len()], IdxData::U8(labels)).unwrap();
    let put = |name: String, bytes: Vec<u8>| {
        let (name, bytes) = if zip { (name + ".gz", gzip(&bytes)) } else { (name, bytes) };
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    put(format!("{prefix}-images-idx3-ubyte"), images.unwrap().to_bytes());
    put(format!("{prefix}-labels-idx1-ubyte"), labels.to_bytes());
}

#[test]
fn mnist_folder_loads_generated_files() {
    let dir = Scratch::new("mnist");
    write_mnist(&dir, "train", 3, vec![4, 0, 9], true);
    write_mnist(&dir, "t10k", 2, vec![1, 2], false);
    let train = mnist::load_dir(&dir, mnist::Split::Train).unwrap();
    assert_eq!((train.len(), train.feature_shape()), (3, &[1usize, 4, 5][..]));
    assert_eq!(train.labels(), &[4, 0, 9]);
    assert_eq!(train.example(0).0[1], 13.0 / 255.0);
    let b = DataLoader::new(&train, 2).epoch(0).next().unwrap().unwrap();
    assert_eq!(b.inputs.dims(), vec![2, 1, 4, 5]);
    assert_eq!(mnist::load_dir(&dir, mnist::Split::Test).unwrap().len(), 2);

    let bad = Scratch::new("mnist-bad");
    write_mnist(&bad, "train", 3, vec![1, 2], false);
    let e = err_text(mnist::load_dir(&bad, mnist::Split::Train));
    assert!(e.contains("train-labels-idx1-ubyte") && e.contains("expected 3 u8 labels"), "{e}");
    write_mnist(&bad, "t10k", 2, vec![1, 12], false);
    let e = err_text(mnist::load_dir(&bad, mnist::Split::Test));
    assert!(e.contains("t10k-labels-idx1-ubyte") && e.contains("byte 9 (label 1)"), "{e}");
    let e = err_text(mnist::load_dir(Scratch::new("mnist-empty"), mnist::Split::Train));
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("fetch_data.sh"), "{e}");
}

/// Runs on the real files when `scripts/fetch_data.sh` has fetched them.
#[test]
fn fashion_mnist_when_fetched() {
    let dir = plies_nn::data::fetched_dir().join("fashion-mnist");
    if !dir.join("t10k-images-idx3-ubyte.gz").is_file() {
        eprintln!("skipped: Fashion-MNIST not fetched (scripts/fetch_data.sh)");
        return;
    }
    let test = mnist::fashion_mnist(mnist::Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.feature_shape(), &[1, 28, 28]);
    assert_eq!(test.class_counts(), vec![1000; 10]);
    assert!(test.features().iter().all(|&v| (0.0..=1.0).contains(&v)));
    let train = mnist::fashion_mnist(mnist::Split::Train).unwrap();
    assert_eq!(train.class_counts(), vec![6000; 10]);
}

// --- text -----------------------------------------------------------------------------------

#[test]
fn vocab_encodes_and_decodes() {
    let v = Vocab::from_text("hello, world");
    assert_eq!(v.chars(), &[' ', ',', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
    let ids = v.encode("hello").unwrap();
    assert_eq!(ids, vec![4, 3, 5, 5, 6]);
    assert_eq!(v.decode(&ids).unwrap(), "hello");
    let e = err_text(v.encode("hex"));
    assert!(e.contains("'x'") && e.contains("character 2"), "{e}");
    let e = err_text(v.decode(&[0, 9]));
    assert!(e.contains("token id 9 at position 1"), "{e}");
    assert!(v.decode(&[-1]).is_err());
}

#[test]
fn shakespeare_is_embedded_and_batches_shift_by_one() {
    let ds = CharDataset::shakespeare();
    assert_eq!(ds.len(), 297_606);
    assert_eq!(ds.vocab_size(), 74);
    assert!(ds.vocab().decode(&ds.tokens()[..12]).unwrap().starts_with("THE SONNETS"));

    let (train, val) = ds.split(0.1).unwrap();
    assert_eq!(val.len(), 29_761);
    assert_eq!(train.len() + val.len(), ds.len());
    assert_eq!(val.tokens()[0], ds.tokens()[train.len()]);
    assert_eq!(val.vocab(), ds.vocab());

    let mut rng = Rng::new(5);
    let b = train.random_batch(4, 16, &mut rng, Device::Cpu).unwrap();
    assert_eq!(b.inputs.dims(), vec![4, 16]);
    assert_eq!(b.targets.dims(), vec![4, 16]);
    assert_eq!(b.inputs.dtype(), DType::I32);
    let (x, y) = (b.inputs.to_vec::<i32>(), b.targets.to_vec::<i32>());
    for row in 0..4 {
        assert_eq!(&x[row * 16 + 1..row * 16 + 16], &y[row * 16..row * 16 + 15]);
    }
    let again = train.random_batch(4, 16, &mut Rng::new(5), Device::Cpu).unwrap();
    assert_eq!(again.inputs.to_vec::<i32>(), x);
}

#[test]
fn char_windows_cover_the_text_without_overlap() {
    let ds = CharDataset::from_text("abcdefghijk").unwrap(); // 11 tokens
    let w = ds.windows(5).unwrap();
    assert_eq!(w.len(), 2);
    let b = DataLoader::new(&w, 2).epoch(0).next().unwrap().unwrap();
    let text = |t: Vec<i32>| ds.vocab().decode(&t).unwrap();
    assert_eq!(text(b.inputs.to_vec()), "abcdefghij");
    assert_eq!(text(b.targets.to_vec()), "bcdefghijk");
    assert!(ds.windows(11).is_err());
    assert!(ds.windows(0).is_err());
    assert!(ds.random_batch(1, 11, &mut Rng::new(0), Device::Cpu).is_err());
    assert!(CharDataset::from_text("").is_err());
    assert!(ds.split(1.0).is_err());
}

#[test]
fn text_files_report_invalid_utf8_offsets() {
    let dir = Scratch::new("text");
    let p = dir.join("bad.txt");
    std::fs::write(&p, b"fine text \xff more").unwrap();
    let e = err_text(CharDataset::from_file(&p));
    assert!(e.contains("bad.txt") && e.contains("byte 10") && e.contains("invalid UTF-8"), "{e}");
    let p = dir.join("good.txt");
    std::fs::write(&p, "héllo").unwrap();
    assert_eq!(CharDataset::from_file(&p).unwrap().len(), 5);
}

/// Runs on the real file when `scripts/fetch_data.sh` has fetched it.
#[test]
fn moby_dick_when_fetched() {
    match CharDataset::moby_dick() {
        Ok(ds) => {
            assert!(ds.len() > 1_000_000);
            assert!(ds.vocab().decode(&ds.tokens()[..10]).unwrap().starts_with("CHAPTER 1"));
        }
        Err(e) => {
            assert!(e.to_string().contains("fetch_data.sh"), "{e}");
            eprintln!("skipped: {e}");
        }
    }
}

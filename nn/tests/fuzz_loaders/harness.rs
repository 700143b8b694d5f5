//! The fuzz harness every loader's mutation test shares: this folder's `main.rs` for plies-nn's
//! formats, and peft/tests/fuzz_adapters.rs for adapter files, which includes this file by path.
//!
//! Every loader survives garbage: each file format Plies reads gets at least 10,000 mutated
//! or random inputs (see `mutate.rs`). No case may panic, hang, or allocate past the bound its
//! format states; a rejected file's error must name the file and a key or byte offset; a file
//! that loads must give back exactly what it holds (NaN and Inf payloads included).
//!
//! A new format is one more `impl Format` and one more `#[test]` calling [`run`] on it.
//! Case counts and the distinct error kinds go to the real stderr, past the harness.

#[path = "alloc.rs"]
pub mod alloc;
#[path = "mutate.rs"]
pub mod mutate;

use mutate::{Field, Input, Mutation};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

// The test binary including this harness gets the counting allocator with it.
#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

const CASES: u32 = 10_000;
/// A load running longer than this is a hang: the binary aborts naming the input.
const HANG: Duration = Duration::from_secs(20);

/// What a format-aware corruption must do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Expect {
    Loads,
    Fails,
    Either,
}

pub type Loaded = Box<dyn Any>;

pub trait Format {
    fn name(&self) -> &'static str;
    /// The name of the file each case is written to (some loaders look at the extension).
    fn file_name(&self) -> &'static str;
    /// Valid files the mutations start from.
    fn seeds(&self) -> Vec<Vec<u8>>;
    /// The binary length, offset and count fields of `seed`, for `Mutation::Field`.
    fn fields(&self, seed: &[u8]) -> Vec<Field>;
    /// The format's own corruption `variant` (any u8; formats take it modulo their count).
    fn semantic(&self, bytes: &[u8], variant: u8, param: u64) -> Option<(Vec<u8>, Expect)>;
    fn load(&self, path: &Path) -> plies_autodiff::Result<Loaded>;
    /// A successful load gives back what `bytes` hold.
    fn verify(&self, bytes: &[u8], out: &dyn Any) -> Result<(), String>;
    /// The most bytes one load of `bytes` may have allocated at once, given its output (each
    /// implementation says why).
    fn bound(&self, bytes: &[u8], out: Option<&dyn Any>) -> usize;
}

/// Bytes of fixed working memory any loader may use besides the bound's terms: small buffers,
/// the error message, the output's handles.
pub const SLACK: usize = 8 << 10;
/// What reading gzip adds: one decoder's state (its 32 KiB window, Huffman tables and
/// buffers: about 85 KiB measured) and the header's extra field, which flate2 allocates at
/// the size the header's 16-bit XLEN claims (up to 64 KiB).
pub const GZIP_STATE: usize = 160 << 10;

#[derive(Default)]
struct Stats {
    loaded: usize,
    rejected: usize,
    kinds: BTreeMap<String, usize>,
    worst_peak: usize,
    worst_bound_use: f64,
}

/// The error with the variable parts (numbers, names, quoted text, the path) blanked, so
/// messages that differ only in those count as one kind.
fn kind(msg: &str, path: &str) -> String {
    let msg = msg.replace(path, "FILE");
    // serde_json's position suffix (the `at` part already gives the byte).
    let msg = match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => &msg[..i],
        _ => &msg[..],
    };
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut last_digit = false;
    for c in msg.chars() {
        match quote {
            Some(q) if c == q || (q == '[' && c == ']') => {
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None if c == '`' || c == '"' || c == '[' => {
                out.push(c);
                out.push('_');
                quote = Some(c);
            }
            None if c.is_ascii_digit() => {
                if !last_digit {
                    out.push('N');
                }
            }
            None => out.push(c),
        }
        last_digit = c.is_ascii_digit() && quote.is_none();
    }
    out.chars().take(110).collect()
}

/// The message points into the file: a byte offset, a line, or a quoted key.
fn names_a_place(msg: &str) -> bool {
    let number_after =
        |w: &str| msg.match_indices(w).any(|(i, _)| msg[i + w.len()..].starts_with(|c: char| c.is_ascii_digit()));
    number_after("byte ") || number_after("offset ") || number_after("line ") || msg.matches('`').count() >= 2
}

/// The watchdog's view: per running case, when it started and its input.
type Running = Mutex<HashMap<String, (Instant, Vec<u8>)>>;

fn watch() -> &'static Running {
    static W: OnceLock<Running> = OnceLock::new();
    W.get_or_init(|| {
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_millis(200));
            let w = watch().lock().unwrap_or_else(|e| e.into_inner());
            if let Some((name, (_, bytes))) = w.iter().find(|(_, (t, _))| t.elapsed() > HANG) {
                let _ = writeln!(std::io::stderr(), "HANG: {name} ran over {HANG:?} on input {bytes:02x?}");
                std::process::abort();
            }
        });
        Mutex::new(HashMap::new())
    })
}

fn build(f: &dyn Format, seeds: &[Vec<u8>], input: &Input) -> (Vec<u8>, Expect) {
    match input {
        Input::Random(b) => (b.clone(), Expect::Either),
        Input::PrefixThenRandom { seed, cut, tail } => {
            let s = &seeds[seed.index(seeds.len())];
            let mut b = s[..cut.index(s.len() + 1)].to_vec();
            b.extend_from_slice(tail);
            (b, Expect::Either)
        }
        Input::Mutated { seed, mutations } => {
            let mut b = seeds[seed.index(seeds.len())].clone();
            // A format's corruption knows what the loader must do only if the file it started
            // from was still valid (a seed, or only corruptions that must load so far).
            let mut valid = true;
            let mut expect = Expect::Either;
            for m in mutations {
                match m {
                    Mutation::Field(i, v) => {
                        let fields = f.fields(&b);
                        if !fields.is_empty() {
                            mutate::set_field(&mut b, fields[i.index(fields.len())], v);
                        }
                    }
                    Mutation::Semantic(v, p) => {
                        if let Some((nb, e)) = f.semantic(&b, *v, *p) {
                            b = nb;
                            expect = if valid { e } else { Expect::Either };
                            valid = valid && e == Expect::Loads;
                            continue;
                        }
                    }
                    m => mutate::apply_bytes(&mut b, m),
                }
                valid = false;
                expect = Expect::Either;
            }
            (b, expect)
        }
    }
}

fn one_case(f: &dyn Format, path: &Path, bytes: &[u8], expect: Expect, stats: &RefCell<Stats>) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let me = format!("{} ({:?})", f.name(), std::thread::current().id());
    watch().lock().unwrap_or_else(|e| e.into_inner()).insert(me.clone(), (Instant::now(), bytes.to_vec()));
    let (res, peak) = alloc::peak_of(|| catch_unwind(AssertUnwindSafe(|| f.load(path))));
    watch().lock().unwrap_or_else(|e| e.into_inner()).remove(&me);
    let res = res.map_err(|p| {
        let why = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
        format!("panicked: {}", why.unwrap_or_default())
    })?;
    let bound = f.bound(bytes, res.as_ref().ok().map(|b| &**b));
    let mut st = stats.borrow_mut();
    st.worst_peak = st.worst_peak.max(peak);
    st.worst_bound_use = st.worst_bound_use.max(peak as f64 / bound as f64);
    if peak > bound {
        return Err(format!("allocated {peak} bytes at peak, over the bound {bound} (file of {} bytes)", bytes.len()));
    }
    match res {
        Ok(out) => {
            if expect == Expect::Fails {
                return Err("loaded a file it must refuse".into());
            }
            st.loaded += 1;
            f.verify(bytes, &*out).map_err(|e| format!("loaded, but not what the file holds: {e}"))
        }
        Err(e) => {
            let msg = e.to_string();
            if expect == Expect::Loads {
                return Err(format!("refused a file it must load: {msg}"));
            }
            let p = path.display().to_string();
            if !msg.contains(&p) || !names_a_place(&msg) {
                return Err(format!("error does not name the file and a key or offset: {msg}"));
            }
            st.rejected += 1;
            *st.kinds.entry(kind(&msg, &p)).or_default() += 1;
            Ok(())
        }
    }
}

pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("plies-fuzz-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("a scratch folder");
    d
}

pub fn run(f: &dyn Format) {
    let start = Instant::now();
    let dir = scratch(f.name());
    let path = dir.join(f.file_name());
    let seeds = f.seeds();
    for s in &seeds {
        let st = RefCell::new(Stats::default());
        if let Err(e) = one_case(f, &path, s, Expect::Loads, &st) {
            panic!("{}: a seed fails: {e}", f.name());
        }
    }
    let stats = RefCell::new(Stats::default());
    let config = Config { cases: CASES, failure_persistence: None, max_shrink_iters: 512, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&mutate::input(), |input| {
        let (bytes, expect) = build(f, &seeds, &input);
        one_case(f, &path, &bytes, expect, &stats)
            .map_err(|e| TestCaseError::fail(format!("{e}\n  input: {} bytes {:02x?}", bytes.len(), bytes)))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let st = stats.into_inner();
    let mut out = format!(
        "fuzz {}: {} cases ({} loaded, {} rejected) in {:.1} s; peak allocation {} bytes, {:.0}% of its bound at most; {} error kinds:\n",
        f.name(),
        st.loaded + st.rejected,
        st.loaded,
        st.rejected,
        start.elapsed().as_secs_f64(),
        st.worst_peak,
        100.0 * st.worst_bound_use,
        st.kinds.len()
    );
    for (k, n) in &st.kinds {
        out += &format!("  {n:>6}  {k}\n");
    }
    let _ = std::io::stderr().write_all(out.as_bytes());
    if let Err(e) = result {
        panic!("{}: {e}", f.name());
    }
}

//! Character-level text: a vocabulary of the characters a text uses, the text as token ids,
//! and (input, target) windows for next-character prediction.
//!
//! The embedded default is `data/shakespeare.txt` (Sonnets, Macbeth, The Tempest; public
//! domain, ~300 KB); Moby Dick (~1.2 MB) comes from `scripts/fetch_data.sh`.

use super::{fetched_dir, Batch, Dataset};
use plies_autodiff::{Device, Error, Result, Tensor};
use plies_core::rng::Rng;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

static SHAKESPEARE: &str = include_str!("../../../data/shakespeare.txt");

/// The characters of a text, sorted by code point; a character's id is its rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    chars: Vec<char>,
    ids: HashMap<char, i32>,
}

impl Vocab {
    pub fn from_text(text: &str) -> Vocab {
        // A set of the distinct characters rather than a sorted copy of the text (4 bytes per
        // character): memory follows the vocabulary, not the file.
        let mut ascii = [false; 128];
        let mut other = std::collections::BTreeSet::new();
        for c in text.chars() {
            match u8::try_from(c) {
                Ok(b) if b < 128 => ascii[b as usize] = true,
                _ => {
                    other.insert(c);
                }
            }
        }
        let mut chars = Vec::with_capacity(ascii.iter().filter(|&&a| a).count() + other.len());
        chars.extend((0..128u8).filter(|&b| ascii[b as usize]).map(char::from));
        chars.extend(other);
        Vocab::from_chars(chars)
    }

    fn from_chars(chars: Vec<char>) -> Vocab {
        let ids = chars.iter().enumerate().map(|(i, &c)| (c, i as i32)).collect();
        Vocab { chars, ids }
    }

    pub fn len(&self) -> usize {
        self.chars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    pub fn id(&self, c: char) -> Option<i32> {
        self.ids.get(&c).copied()
    }

    /// Token ids of `s`; an error names the first character outside the vocabulary.
    pub fn encode(&self, s: &str) -> Result<Vec<i32>> {
        s.chars()
            .enumerate()
            .map(|(i, c)| {
                self.id(c).ok_or_else(|| {
                    Error::invalid(
                        "Vocab::encode",
                        format!("character {c:?} (U+{:04X}) at character {i} is not in the vocabulary", c as u32),
                    )
                })
            })
            .collect()
    }

    /// The text of token ids; an error names the first id outside `0..len()`.
    pub fn decode(&self, ids: &[i32]) -> Result<String> {
        ids.iter()
            .enumerate()
            .map(|(i, &id)| {
                usize::try_from(id).ok().and_then(|k| self.chars.get(k).copied()).ok_or_else(|| {
                    Error::invalid(
                        "Vocab::decode",
                        format!("token id {id} at position {i} is outside the vocabulary 0..{}", self.len()),
                    )
                })
            })
            .collect()
    }
}

/// A text as token ids, with its vocabulary (shared by the splits made from it).
#[derive(Clone, Debug)]
pub struct CharDataset {
    vocab: Arc<Vocab>,
    tokens: Arc<[i32]>,
}

impl CharDataset {
    /// The text with a vocabulary of exactly its characters. Fails on an empty text.
    pub fn from_text(text: &str) -> Result<CharDataset> {
        if text.is_empty() {
            return Err(Error::invalid("CharDataset::from_text", "the text is empty"));
        }
        let vocab = Vocab::from_text(text);
        // Filled in place, so the ids are allocated once (a collected Vec would grow by
        // doubling and then be copied into the Arc).
        let mut tokens: Arc<[i32]> = std::iter::repeat_n(0, text.chars().count()).collect();
        let slots = Arc::get_mut(&mut tokens).expect("a new Arc has no other owner");
        for (slot, c) in slots.iter_mut().zip(text.chars()) {
            *slot = vocab.id(c).expect("the vocabulary holds every character of its text");
        }
        Ok(CharDataset { vocab: Arc::new(vocab), tokens })
    }

    /// The embedded Shakespeare text (297,606 ASCII characters).
    pub fn shakespeare() -> CharDataset {
        CharDataset::from_text(SHAKESPEARE).expect("the embedded text is not empty")
    }

    /// Moby Dick from `fetched_dir()/moby-dick/moby-dick.txt` (run `scripts/fetch_data.sh` first).
    pub fn moby_dick() -> Result<CharDataset> {
        let path = fetched_dir().join("moby-dick").join("moby-dick.txt");
        if !path.is_file() {
            return Err(Error::io(
                &path,
                "not found; run scripts/fetch_data.sh to fetch Moby Dick, or set PLIES_DATA_DIR",
            ));
        }
        CharDataset::from_file(path)
    }

    /// A UTF-8 text file; an error names the byte offset of invalid UTF-8.
    pub fn from_file(path: impl AsRef<Path>) -> Result<CharDataset> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = std::str::from_utf8(&bytes).map_err(|e| Error::Format {
            path: path.display().to_string(),
            at: format!("byte {}", e.valid_up_to()),
            msg: "invalid UTF-8".into(),
        })?;
        if text.is_empty() {
            return Err(Error::Format {
                path: path.display().to_string(),
                at: "byte 0".into(),
                msg: "empty file".into(),
            });
        }
        CharDataset::from_text(text)
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    pub fn tokens(&self) -> &[i32] {
        &self.tokens
    }

    /// Number of tokens (characters).
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Split into `(train, validation)`: the last `val_fraction` of the text (rounded to whole
    /// characters) becomes the validation part. Contiguous, so no window spans both parts;
    /// both share this vocabulary.
    pub fn split(&self, val_fraction: f64) -> Result<(CharDataset, CharDataset)> {
        if !(0.0..1.0).contains(&val_fraction) {
            return Err(Error::invalid("CharDataset::split", format!("val_fraction {val_fraction} is outside 0..1")));
        }
        let n_val = (val_fraction * self.len() as f64).round() as usize;
        let cut = self.len() - n_val;
        let part = |t: &[i32]| CharDataset { vocab: self.vocab.clone(), tokens: t.into() };
        Ok((part(&self.tokens[..cut]), part(&self.tokens[cut..])))
    }

    /// The characters `range` of this text (e.g. one work of a collection), sharing its
    /// vocabulary, so models trained on different parts read the same ids.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Result<CharDataset> {
        if range.start >= range.end || range.end > self.len() {
            return Err(Error::invalid(
                "CharDataset::slice",
                format!("range {range:?} is empty or past the end of the text ({} tokens)", self.len()),
            ));
        }
        Ok(CharDataset { vocab: self.vocab.clone(), tokens: self.tokens[range].into() })
    }

    /// `batch` windows of `context + 1` tokens at random starts: inputs are the first `context`
    /// tokens, targets the last `context` (each input's next token). Both `[batch, context]` i32.
    pub fn random_batch(&self, batch: usize, context: usize, rng: &mut Rng, device: Device) -> Result<Batch> {
        let starts = self.window_starts(context)?;
        let picks: Vec<usize> = (0..batch).map(|_| rng.below(starts as u64) as usize).collect();
        self.windows_at(&picks, context, device)
    }

    /// Non-overlapping windows (starts `0, context, 2*context, ...`) as a [`Dataset`], for
    /// deterministic evaluation or epoch-based training with a [`super::DataLoader`].
    pub fn windows(&self, context: usize) -> Result<CharWindows<'_>> {
        let starts = self.window_starts(context)?;
        Ok(CharWindows { data: self, context, count: starts.div_ceil(context) })
    }

    /// How many window starts there are for `context` (each window holds `context + 1` tokens).
    fn window_starts(&self, context: usize) -> Result<usize> {
        if context == 0 || self.len() < context + 1 {
            return Err(Error::invalid(
                "CharDataset windows",
                format!("context {context} needs 1 <= context < length of the text ({} tokens)", self.len()),
            ));
        }
        Ok(self.len() - context)
    }

    fn windows_at(&self, starts: &[usize], context: usize, device: Device) -> Result<Batch> {
        let mut inputs = Vec::with_capacity(starts.len() * context);
        let mut targets = Vec::with_capacity(starts.len() * context);
        for &s in starts {
            inputs.extend_from_slice(&self.tokens[s..s + context]);
            targets.extend_from_slice(&self.tokens[s + 1..s + context + 1]);
        }
        Ok(Batch {
            inputs: Tensor::try_from_vec(inputs, [starts.len(), context], device)?,
            targets: Tensor::try_from_vec(targets, [starts.len(), context], device)?,
        })
    }
}

/// Non-overlapping `(input, target)` windows of a [`CharDataset`]; see [`CharDataset::windows`].
#[derive(Clone, Copy, Debug)]
pub struct CharWindows<'a> {
    data: &'a CharDataset,
    context: usize,
    count: usize,
}

impl Dataset for CharWindows<'_> {
    fn len(&self) -> usize {
        self.count
    }

    /// Inputs and targets `[b, context]` i32.
    fn batch(&self, indices: &[usize], device: Device) -> Result<Batch> {
        let starts = indices
            .iter()
            .map(|&i| {
                if i < self.count {
                    Ok(i * self.context)
                } else {
                    Err(Error::IndexOutOfRange { op: "CharWindows::batch", index: i as i64, size: self.count })
                }
            })
            .collect::<Result<Vec<_>>>()?;
        self.data.windows_at(&starts, self.context, device)
    }
}

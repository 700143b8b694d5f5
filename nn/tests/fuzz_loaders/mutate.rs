//! Inputs: a valid seed file with up to four mutations stacked, or random bytes (alone or after
//! a valid prefix). Byte-level mutations know nothing of the format; `Field` rewrites a length,
//! offset or count field the format points out; `Semantic` asks the format for one of its own
//! corruptions (duplicate keys, overlapping offsets, NaN payloads, ...).

use proptest::prelude::*;
use proptest::sample::Index;

/// A binary integer field of a seed (a length, a dimension, an offset).
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub at: usize,
    pub width: usize,
    pub big_endian: bool,
}

#[derive(Clone, Debug)]
pub enum FieldValue {
    Zero,
    One,
    Max,
    /// 2^40: a terabyte, as bytes or elements.
    Terabyte,
    PlusOne,
    MinusOne,
    Double,
    Any(u64),
}

#[derive(Clone, Debug)]
pub enum Mutation {
    Truncate(Index),
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Field(Index, FieldValue),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    /// Copy `len` bytes from the first position over the second.
    Duplicate(Index, usize, Index),
    /// The format's own corruption number `.0`, with a free parameter.
    Semantic(u8, u64),
}

#[derive(Clone, Debug)]
pub enum Input {
    Mutated {
        seed: Index,
        mutations: Vec<Mutation>,
    },
    Random(Vec<u8>),
    /// A valid seed cut somewhere, then random bytes.
    PrefixThenRandom {
        seed: Index,
        cut: Index,
        tail: Vec<u8>,
    },
}

fn field_value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        Just(FieldValue::Zero),
        Just(FieldValue::One),
        Just(FieldValue::Max),
        Just(FieldValue::Terabyte),
        Just(FieldValue::PlusOne),
        Just(FieldValue::MinusOne),
        Just(FieldValue::Double),
        any::<u64>().prop_map(FieldValue::Any),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => any::<Index>().prop_map(Mutation::Truncate),
        3 => (any::<Index>(), 0..8u8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::SetByte(i, v)),
        3 => (any::<Index>(), field_value()).prop_map(|(i, v)| Mutation::Field(i, v)),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), 1..32usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<Index>(), 1..64usize, any::<Index>()).prop_map(|(a, n, b)| Mutation::Duplicate(a, n, b)),
        6 => (any::<u8>(), any::<u64>()).prop_map(|(v, p)| Mutation::Semantic(v, p)),
    ]
}

pub fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        16 => (any::<Index>(), prop::collection::vec(mutation(), 1..=4))
            .prop_map(|(seed, mutations)| Input::Mutated { seed, mutations }),
        2 => prop::collection::vec(any::<u8>(), 0..256).prop_map(Input::Random),
        2 => (any::<Index>(), any::<Index>(), prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(seed, cut, tail)| Input::PrefixThenRandom { seed, cut, tail }),
    ]
}

/// Rewrite field `f` of `b` (when it still fits in `b`).
pub fn set_field(b: &mut [u8], f: Field, v: &FieldValue) {
    let Some(slot) = b.get_mut(f.at..f.at + f.width) else { return };
    let mut raw = [0u8; 8];
    if f.big_endian {
        raw[8 - f.width..].copy_from_slice(slot);
    } else {
        raw[..f.width].copy_from_slice(slot);
    }
    let old = if f.big_endian { u64::from_be_bytes(raw) } else { u64::from_le_bytes(raw) };
    let max = if f.width == 8 { u64::MAX } else { (1u64 << (8 * f.width)) - 1 };
    let new = match v {
        FieldValue::Zero => 0,
        FieldValue::One => 1,
        FieldValue::Max => max,
        FieldValue::Terabyte => 1 << 40,
        FieldValue::PlusOne => old.wrapping_add(1),
        FieldValue::MinusOne => old.wrapping_sub(1),
        FieldValue::Double => old.wrapping_mul(2),
        FieldValue::Any(x) => *x,
    }
    .min(max);
    if f.big_endian {
        slot.copy_from_slice(&new.to_be_bytes()[8 - f.width..]);
    } else {
        slot.copy_from_slice(&new.to_le_bytes()[..f.width]);
    }
}

/// Apply a byte-level mutation; `Field` and `Semantic` are the caller's.
pub fn apply_bytes(b: &mut Vec<u8>, m: &Mutation) {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
    match m {
        Mutation::Truncate(i) => b.truncate(at(i, b.len())),
        Mutation::FlipBit(i, bit) if !b.is_empty() => {
            let p = at(i, b.len());
            b[p] ^= 1 << bit;
        }
        Mutation::SetByte(i, v) if !b.is_empty() => {
            let p = at(i, b.len());
            b[p] = *v;
        }
        Mutation::Insert(i, bytes) => {
            let p = at(i, b.len() + 1);
            b.splice(p..p, bytes.iter().copied());
        }
        Mutation::Delete(i, n) if !b.is_empty() => {
            let p = at(i, b.len());
            b.drain(p..(p + n).min(b.len()));
        }
        Mutation::Duplicate(from, n, to) if !b.is_empty() => {
            let (f, t) = (at(from, b.len()), at(to, b.len()));
            let chunk: Vec<u8> = b[f..(f + n).min(b.len())].to_vec();
            let end = (t + chunk.len()).min(b.len());
            b[t..end].copy_from_slice(&chunk[..end - t]);
        }
        _ => {}
    }
}

//! A fuzz harness on stable Rust for what reads untrusted bytes: the
//! envelope and codec decoders (stored values) and the key-template
//! renderer (placeholder values).
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/fuzz-target cargo run --release -p cache-benches --bin fuzz -- \
//!     [inputs, default 10000000] [seed, default 1]
//! ```
//!
//! The same seed gives the same inputs (the seeds' timestamps are pinned).
//! Each input goes to every target:
//!
//! - `envelope+json`, `envelope+bincode`: the read of stored bytes on a
//!   cache with `JsonCodec` or `BincodeCodec` (`__private::fuzz_decode_envelope`:
//!   size check against `max_value_size` = `MAX_VALUE_SIZE` (1 MiB), header,
//!   schema check, codec), into each of the 14 types of `with_types!`, with
//!   the type's real schema fingerprint as a read passes it (or 0, as the
//!   write-behind flusher reads, on a random half of the inputs);
//! - `envelope+custom json`, `envelope+custom bincode`: the same through a
//!   user codec (ids 200 and 201, which delegate to `serde_json` and to
//!   `BincodeCodec`'s own `Codec` impl), i.e. the `erased_serde` path;
//! - `key_part`: a string from the input rendered through `key_part`'s
//!   `Display`, once whole and once written in random pieces (as a
//!   `Display` of many `write_str` calls does), plus an integer, a float
//!   and a char; checked: no raw `:`, unescaping gives the value back (so
//!   distinct values give distinct parts), a 64 Ki-entry sample finds no two
//!   values with one rendering, a `Display` that fails fails the write;
//! - `rendered key`: four templates (`{}`, `{}:{}`, `product:{}:v{}`,
//!   `user:{}:{}`) through the key path of `#[cached(key = ...)]`
//!   (`__private::fuzz_render_key`), under six prefixes; checked: the
//!   prefix and `:` come first, the relative key never starts with the
//!   reserved `__`, it has exactly the template's fields, each field decodes
//!   back to its value, no two `{}:{}` pairs in a sample share a key, and a
//!   `Display` that fails gives no key.
//!
//! Envelope inputs: 80% a valid seed (made by the real encoder with both
//! built-in codecs and both user codecs, with the type's fingerprint or 0,
//! version 2 and version 1 headers; strings, integers, a char, structs with
//! an enum, an internally tagged enum, nested `Vec`/`Option`/maps, JSON
//! values, and 40-70 KB values behind 2- and 4-byte bincode length
//! prefixes, picked for one input in 25) with 1-8 mutations: bit flips,
//! byte sets and arithmetic, inserts, deletes, truncation, splices from
//! another seed, repeated chunks, bincode length prefixes overwritten with
//! large values, wider integers overwritten, JSON tokens and deep nesting,
//! header fields (magic, version, codec id, timestamps, fingerprint, a
//! version 1/2 conversion, another seed's header); 5% a seed unchanged
//! (decoded into every other type too); 15% random bytes, two thirds of
//! them behind a valid header. Inputs are cut at 256 KiB; every 100,000th
//! input is instead one of four probes: a JSON and a bincode string of
//! exactly `max_value_size` bytes, one byte more, and a JSON string of DEL
//! characters.
//!
//! Every call runs under `catch_unwind`; a counting global allocator records
//! the largest single allocation of each call, made up front (`alloc`,
//! `alloc_zeroed`: a size chosen before the data is read, e.g. from a length
//! prefix) or grown to (`realloc`: a buffer that grew as data was read or
//! written).
//!
//! The bound is one of amplification, [`bound`]: no single allocation of one
//! decode or render may exceed 2 MiB or 128 times the length of its input
//! (the whole stored value, header included; the text, for the key
//! targets), whichever is larger. 128 is `BincodeCodec`'s budget times its
//! rounding: a decode may claim 32 bytes of memory per input byte (valid
//! values claim up to 16), and the claim's limit is that need rounded up to
//! a power of 4 from 64 KiB, so at most 4 times it. Everything else counts
//! against the same bound: the buffers of valid data (a `serde_json::Value`
//! array takes 16 bytes per byte of JSON), serde's preallocation for a
//! claimed sequence or map length (which serde caps at 1 MiB of elements
//! whatever the input, and a hash map's table at about 1.6 times that: the
//! 2 MiB floor, a constant whatever the input's size, is for it), and the messages a format library writes about the
//! input (`serde_json` quoting a string it cannot read, escaped: up to six
//! bytes per byte of input), made inside the library and dropped once
//! `CodecError` has kept its first 256 characters. A bound in proportion to
//! the input, not to `max_value_size`, is what matters to a reader of values
//! someone else wrote: how much memory it spends per byte written. The tool
//! reports the largest allocation and the largest ratio of allocation to
//! input length per target (and that ratio among allocations above the
//! floor, where the bound is the ratio).
//!
//! The tool prints a table, allocations above the bound by target and type,
//! and the first failures (input as hex, the panic with its backtrace; for
//! an allocation above the bound, the input is decoded once more with a
//! backtrace printed on stderr at each such allocation), and exits non-zero
//! on any panic, allocation above the bound or failed property.

use cache_runtime::__private::{
    fuzz_codec, fuzz_decode_envelope, fuzz_encode_envelope, fuzz_render_key, fuzz_schema, key_part,
    FuzzCodec,
};
use cache_runtime::erased_serde;
use cache_runtime::{BincodeCodec, Codec, CodecError, JsonCodec};
use serde::{Deserialize, Serialize};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::hint::black_box;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The `max_value_size` every decode is given.
const MAX_VALUE_SIZE: usize = 1 << 20;
/// The bound below which any input may allocate: serde preallocates up to
/// 1 MiB of a claimed sequence's elements (a hash map's table, up to about
/// 1.6 MiB) before reading them, whatever the input.
const FLOOR: usize = 2 << 20;
/// Bytes an input may allocate at once per byte of its length: the codec's
/// claim per byte (32) times the rounding of its limit (4).
const PER_BYTE: usize = 128;

/// No single allocation of a call on an input of `len` bytes may be larger.
fn bound(len: usize) -> usize {
    FLOOR.max(len.saturating_mul(PER_BYTE))
}
/// Generated inputs are cut to this length (the probes are larger).
const MAX_INPUT: usize = 256 << 10;
/// Failures printed per kind.
const SHOW: usize = 3;

// ---------------------------------------------------------------- allocator

/// The largest single allocation made up front (`alloc`, `alloc_zeroed`)
/// since the last reset.
static PEAK_NEW: AtomicUsize = AtomicUsize::new(0);
/// The largest size a reallocation grew a block to since the last reset.
static PEAK_GROW: AtomicUsize = AtomicUsize::new(0);
/// When set, an allocation above [`TRAP_BOUND`] prints a backtrace.
static TRAP: AtomicBool = AtomicBool::new(false);
/// The bound of the input decoded while [`TRAP`] is set.
static TRAP_BOUND: AtomicUsize = AtomicUsize::new(usize::MAX);

thread_local! {
    static IN_TRAP: Cell<bool> = const { Cell::new(false) };
}

struct Counting;

fn note(peak: &AtomicUsize, size: usize) {
    // One thread allocates while measured: no read-modify-write needed.
    if size > peak.load(Relaxed) {
        peak.store(size, Relaxed);
    }
    if TRAP.load(Relaxed) && size > TRAP_BOUND.load(Relaxed) {
        trap(size);
    }
}

#[cold]
fn trap(size: usize) {
    if IN_TRAP.with(|t| t.replace(true)) {
        return;
    }
    let trace = std::backtrace::Backtrace::force_capture();
    let bound = TRAP_BOUND.load(Relaxed);
    eprintln!("allocation of {size} bytes (above the bound of {bound}) at:\n{trace}");
    IN_TRAP.with(|t| t.set(false));
}

// SAFETY: every call is forwarded to `System` unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(&PEAK_NEW, layout.size());
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(&PEAK_NEW, layout.size());
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(&PEAK_GROW, new_size);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The largest allocations of a call: made up front, and grown to.
#[derive(Debug, Default, Clone, Copy)]
struct Peaks {
    new: usize,
    grow: usize,
}

impl Peaks {
    fn reset() {
        PEAK_NEW.store(0, Relaxed);
        PEAK_GROW.store(0, Relaxed);
    }
    fn now() -> Self {
        Peaks {
            new: PEAK_NEW.load(Relaxed),
            grow: PEAK_GROW.load(Relaxed),
        }
    }
    fn max(self) -> usize {
        self.new.max(self.grow)
    }
    fn join(self, other: Peaks) -> Peaks {
        Peaks {
            new: self.new.max(other.new),
            grow: self.grow.max(other.grow),
        }
    }
}

// ---------------------------------------------------------------- random

/// SplitMix64: small, fast, and enough for choosing mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
    /// True once in `n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
    fn pick_ref<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------- types

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Plain,
    Sized(u32),
    Named { on: bool, note: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
    tags: Vec<String>,
    price: Option<f64>,
    dims: (u16, u16),
    kind: Kind,
}

/// Internally tagged: serde buffers it through `deserialize_any`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t")]
enum Tagged {
    A { x: u32 },
    B { s: String, v: Vec<u8> },
}

/// The types every envelope input is decoded into, in one place.
macro_rules! with_types {
    ($m:ident) => {
        $m!(
            String,
            u64,
            char,
            (u8, String),
            Option<Vec<i32>>,
            Vec<u8>,
            Product,
            Vec<Product>,
            HashMap<String, Vec<u32>>,
            BTreeMap<u32, Option<String>>,
            Vec<Option<Vec<u8>>>,
            Vec<Vec<u64>>,
            Tagged,
            serde_json::Value
        )
    };
}

macro_rules! fingerprints {
    ($($t:ty),*) => {
        vec![$(fuzz_schema::<$t>()),*]
    };
}

macro_rules! type_names {
    ($($t:ty),*) => {
        vec![$(stringify!($t)),*]
    };
}

/// What one call of a target gave.
#[derive(Default)]
struct Outcome {
    accepted: bool,
    /// The largest allocations seen by the target itself (it resets the
    /// counters between its steps), and the step of the largest.
    peaks: Peaks,
    step: &'static str,
    violation: Option<String>,
}

/// Decodes `bytes` into every type (or only the type named `only`);
/// `fps[i]` is the fingerprint passed for the i-th (0 when `schema` is off).
fn decode_all(
    bytes: &[u8],
    codec: &FuzzCodec,
    fps: &[u64],
    schema: bool,
    only: Option<&str>,
) -> Outcome {
    let mut out = Outcome::default();
    let mut fp = fps.iter();
    macro_rules! decode {
        ($($t:ty),*) => {$(
            let expected = fp.next().copied().unwrap_or(0);
            if only.is_none_or(|name| name == stringify!($t)) {
                Peaks::reset();
                out.accepted |= {
                    let value = fuzz_decode_envelope::<$t>(
                        bytes, codec, MAX_VALUE_SIZE, if schema { expected } else { 0 });
                    black_box(&value);
                    value.is_some()
                };
                let peaks = Peaks::now();
                if peaks.max() > out.peaks.max() {
                    out.step = stringify!($t);
                }
                out.peaks = out.peaks.join(peaks);
            }
        )*};
    }
    with_types!(decode);
    out
}

// ---------------------------------------------------------------- codecs

/// A user codec: JSON under id 200, through the `erased_serde` path.
struct CustomJson;

impl Codec for CustomJson {
    fn id(&self) -> u8 {
        200
    }
    fn name(&self) -> &'static str {
        "custom-json"
    }
    fn encode(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        serde_json::to_writer(out, value).map_err(CodecError::new)
    }
    fn decode(
        &self,
        bytes: &[u8],
        visit: &mut dyn FnMut(
            &mut dyn erased_serde::Deserializer<'_>,
        ) -> Result<(), erased_serde::Error>,
    ) -> Result<(), CodecError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        visit(&mut <dyn erased_serde::Deserializer>::erase(&mut de)).map_err(CodecError::new)?;
        de.end().map_err(CodecError::new)
    }
}

/// A user codec: `BincodeCodec`'s own `Codec` impl under id 201.
struct CustomBincode;

impl Codec for CustomBincode {
    fn id(&self) -> u8 {
        201
    }
    fn name(&self) -> &'static str {
        "custom-bincode"
    }
    fn encode(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        BincodeCodec.encode(value, out)
    }
    fn decode(
        &self,
        bytes: &[u8],
        visit: &mut dyn FnMut(
            &mut dyn erased_serde::Deserializer<'_>,
        ) -> Result<(), erased_serde::Error>,
    ) -> Result<(), CodecError> {
        BincodeCodec.decode(bytes, visit)
    }
}

const CODEC_IDS: [u8; 4] = [b'j', b'b', 200, 201];
const CODEC_NAMES: [&str; 4] = [
    "envelope+json",
    "envelope+bincode",
    "envelope+custom json",
    "envelope+custom bincode",
];

fn codecs() -> [FuzzCodec; 4] {
    [
        fuzz_codec(JsonCodec),
        fuzz_codec(BincodeCodec),
        fuzz_codec(CustomJson),
        fuzz_codec(CustomBincode),
    ]
}

// ---------------------------------------------------------------- seeds

const HEADER_LEN: usize = 32;
/// Version 2's header, without the computing time.
const V2_HEADER_LEN: usize = 28;
const WRITTEN_AT_MS: u64 = 1_700_000_000_000;

/// Valid stored values from the real encoder.
struct Seeds {
    all: Vec<Vec<u8>>,
    /// Indexes into `all`: seeds of at most [`SMALL`] bytes, and the others.
    small: Vec<usize>,
    large: Vec<usize>,
    /// Seeds that decode back to their value as their own type.
    round_trips: usize,
    /// Seeds expected to (JSON codecs, every type; bincode, all but the
    /// `deserialize_any` types).
    expected: usize,
}

fn pin_timestamps(bytes: &mut [u8]) {
    bytes[4..12].copy_from_slice(&WRITTEN_AT_MS.to_be_bytes());
    bytes[12..20].copy_from_slice(&(WRITTEN_AT_MS + 60_000).to_be_bytes());
}

fn seeds(codecs: &[FuzzCodec; 4]) -> Seeds {
    let mut s = Seeds {
        all: Vec::new(),
        small: Vec::new(),
        large: Vec::new(),
        round_trips: 0,
        expected: 0,
    };
    fn add<T>(s: &mut Seeds, codecs: &[FuzzCodec; 4], value: &T, self_describing_only: bool)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq,
    {
        let fp = fuzz_schema::<T>();
        for (c, codec) in codecs.iter().enumerate() {
            for schema in [fp, 0] {
                let Ok(mut bytes) = fuzz_encode_envelope(
                    value,
                    codec,
                    Duration::from_secs(60),
                    MAX_VALUE_SIZE,
                    schema,
                ) else {
                    continue;
                };
                pin_timestamps(&mut bytes);
                let json = c % 2 == 0;
                if json || !self_describing_only {
                    s.expected += 1;
                    let back = fuzz_decode_envelope::<T>(&bytes, codec, MAX_VALUE_SIZE, fp);
                    if back.as_ref() == Some(value) {
                        s.round_trips += 1;
                    }
                }
                // Versions 1 and 2: the same without the fingerprint, and
                // without the computing time.
                if schema != 0 && bytes.len() < 4096 {
                    let mut v1 = bytes[..20].to_vec();
                    v1[2] = 1;
                    v1.extend_from_slice(&bytes[HEADER_LEN..]);
                    s.all.push(v1);
                    let mut v2 = bytes[..V2_HEADER_LEN].to_vec();
                    v2[2] = 2;
                    v2.extend_from_slice(&bytes[HEADER_LEN..]);
                    s.all.push(v2);
                }
                s.all.push(bytes);
            }
        }
    }
    let product = |id: u64, tags: usize| Product {
        id,
        name: format!("lamp {id} \"desk\" \\ żółw"),
        tags: (0..tags).map(|t| format!("tag-{t}:x%")).collect(),
        price: if id.is_multiple_of(3) {
            None
        } else {
            Some(id as f64 * 1.25)
        },
        dims: (id as u16, u16::MAX),
        kind: match id % 3 {
            0 => Kind::Plain,
            1 => Kind::Sized(id as u32),
            _ => Kind::Named {
                on: id.is_multiple_of(2),
                note: "n".repeat(id as usize % 7),
            },
        },
    };
    for text in [
        "",
        "hello",
        "a:b%c",
        "żółw 🐢",
        "quote \" back \\ nl \n \u{1}",
    ] {
        add(&mut s, codecs, &text.to_string(), false);
    }
    // Large: a 2-byte bincode length prefix, 40 KB of text.
    add(&mut s, codecs, &"x".repeat(40_000), false);
    add(&mut s, codecs, &u64::MAX, false);
    add(&mut s, codecs, &0u64, false);
    add(&mut s, codecs, &'🐢', false);
    add(&mut s, codecs, &(7u8, "seven".to_string()), false);
    add(
        &mut s,
        codecs,
        &Some(vec![-1i32, 0, i32::MAX, i32::MIN]),
        false,
    );
    add(&mut s, codecs, &None::<Vec<i32>>, false);
    add(
        &mut s,
        codecs,
        &vec![0u8, 1, 2, 250, 251, 252, 253, 254, 255],
        false,
    );
    add(&mut s, codecs, &product(1, 2), false);
    add(&mut s, codecs, &product(2, 0), false);
    add(&mut s, codecs, &product(3, 5), false);
    add(
        &mut s,
        codecs,
        &(0..3).map(|i| product(i, 2)).collect::<Vec<_>>(),
        false,
    );
    // Large: about 60 KB of structs, many strings.
    add(
        &mut s,
        codecs,
        &(0..400).map(|i| product(i, 3)).collect::<Vec<_>>(),
        false,
    );
    let map: HashMap<String, Vec<u32>> = (0..5)
        .map(|i| (format!("key{i}"), (0..i).map(|x| x * 1000).collect()))
        .collect();
    // Seed bytes must not depend on the hasher's random order: encode the
    // entries sorted (the same serde shape), with the map's fingerprint.
    let sorted: BTreeMap<String, Vec<u32>> = map.clone().into_iter().collect();
    for codec in codecs {
        if let Ok(mut bytes) = fuzz_encode_envelope(
            &sorted,
            codec,
            Duration::from_secs(60),
            MAX_VALUE_SIZE,
            fuzz_schema::<HashMap<String, Vec<u32>>>(),
        ) {
            pin_timestamps(&mut bytes);
            s.expected += 1;
            let back = fuzz_decode_envelope::<HashMap<String, Vec<u32>>>(
                &bytes,
                codec,
                MAX_VALUE_SIZE,
                fuzz_schema::<HashMap<String, Vec<u32>>>(),
            );
            if back.as_ref() == Some(&map) {
                s.round_trips += 1;
            }
            s.all.push(bytes);
        }
    }
    let btree: BTreeMap<u32, Option<String>> = [
        (0, None),
        (1, Some("one".into())),
        (u32::MAX, Some(String::new())),
    ]
    .into();
    add(&mut s, codecs, &btree, false);
    add(
        &mut s,
        codecs,
        &vec![None, Some(vec![]), Some(vec![1u8, 2, 3])],
        false,
    );
    // Large: a 4-byte bincode length prefix (70,000 bytes).
    add(&mut s, codecs, &vec![Some(vec![7u8; 70_000]), None], false);
    add(
        &mut s,
        codecs,
        &vec![vec![], vec![u64::MAX, 0, 1 << 40], vec![250, 251, 65_536]],
        false,
    );
    add(&mut s, codecs, &Tagged::A { x: 9 }, true);
    add(
        &mut s,
        codecs,
        &Tagged::B {
            s: "b".into(),
            v: vec![1, 2],
        },
        true,
    );
    let value: serde_json::Value = serde_json::from_str(
        r#"{"a":[1,2.5,-3,null,true,{"b":"c\u00e9"}],"d":{},"e":[[[]]],"big":18446744073709551615}"#,
    )
    .unwrap_or_default();
    add(&mut s, codecs, &value, true);
    for (i, seed) in s.all.iter().enumerate() {
        if seed.len() <= SMALL {
            s.small.push(i);
        } else {
            s.large.push(i);
        }
    }
    s
}

/// Seeds above this many bytes are picked for one input in [`LARGE_ONE_IN`].
const SMALL: usize = 4096;
const LARGE_ONE_IN: usize = 25;

impl Seeds {
    fn pick(&self, rng: &mut Rng) -> &[u8] {
        let from = if rng.one_in(LARGE_ONE_IN) {
            &self.large
        } else {
            &self.small
        };
        &self.all[rng.pick(from)]
    }
}

// ---------------------------------------------------------------- mutation

const INTERESTING_BYTES: [u8; 14] = [
    0, 1, 0x7F, 0x80, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF, b'"', b'\\', b'[', b'{',
];

const JSON_TOKENS: [&[u8]; 24] = [
    b"\"",
    b"\\",
    b"\\u",
    b"\\ud800",
    b"\\udc00\\ud800",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"null",
    b"true",
    b"-",
    b"1e999",
    b"-0.0e-400",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"1.7976931348623157e309",
    b"\"\xff\xfe\"",
    b"\"t\":\"A\"",
    b"\"t\":\"B\"",
    b"0000000000000000000000000000000000000001",
    b"{\"\":",
];

/// Values a length prefix is overwritten with.
fn big_length(rng: &mut Rng) -> u64 {
    match rng.below(6) {
        0 => rng.next(),
        1 => 1 << rng.below(64),
        2 => (1u64 << rng.below(64)).wrapping_sub(1),
        3 => (1u64 << rng.below(64)).wrapping_add(1),
        4 => rng.pick(&[
            (64 << 10) / 24,
            (64 << 10) - 1,
            (1 << 20) - 1,
            1 << 20,
            (32 << 20) - 1,
            32 << 20,
            (1 << 30) - 1,
            1 << 30,
            u64::from(u32::MAX),
            usize::MAX as u64,
        ]),
        _ => rng.below(MAX_INPUT) as u64,
    }
}

/// bincode's variable-length integer, sometimes in a wider form than needed
/// or malformed.
fn push_varint(rng: &mut Rng, v: u64, out: &mut Vec<u8>) {
    match rng.below(8) {
        0 => {
            out.push(0xFE);
            out.extend_from_slice(&u128::from(v).to_le_bytes());
        }
        1 => out.push(0xFF),
        _ if v < 251 => out.push(v as u8),
        _ if v <= u64::from(u16::MAX) => {
            out.push(0xFB);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        _ if v <= u64::from(u32::MAX) => {
            out.push(0xFC);
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
        _ => {
            out.push(0xFD);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// A position in `buf` (`len` > 0), often near the start of the codec's bytes.
fn position(rng: &mut Rng, len: usize) -> usize {
    if rng.one_in(2) && len > HEADER_LEN {
        (HEADER_LEN + rng.below(64)).min(len - 1)
    } else {
        rng.below(len)
    }
}

fn mutate(rng: &mut Rng, buf: &mut Vec<u8>, seeds: &[Vec<u8>], fps: &[u64]) {
    let rounds = 1 + (rng.next().trailing_zeros() as usize).min(7);
    for _ in 0..rounds {
        let len = buf.len();
        match rng.below(13) {
            0 if len > 0 => {
                let at = position(rng, len);
                buf[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = position(rng, len);
                buf[at] = if rng.one_in(2) {
                    rng.pick(&INTERESTING_BYTES)
                } else {
                    rng.next() as u8
                };
            }
            2 => {
                let at = if len == 0 { 0 } else { position(rng, len + 1) };
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                buf.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = position(rng, len);
                let n = 1 + rng.below(64.min(len - at));
                buf.drain(at..at + n);
            }
            4 if len > 0 => buf.truncate(rng.below(len)),
            5 => {
                let other = rng.pick_ref(seeds);
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let n = 1 + rng.below(256.min(other.len() - from));
                    let chunk = &other[from..from + n];
                    let at = if len == 0 { 0 } else { position(rng, len + 1) };
                    if rng.one_in(2) {
                        buf.splice(at..at, chunk.iter().copied());
                    } else {
                        let end = (at + n).min(len);
                        buf.splice(at..end, chunk.iter().copied());
                    }
                }
            }
            6 if len > 0 => {
                // A bincode length prefix (or any integer) made large.
                let at = position(rng, len);
                let v = big_length(rng);
                let mut enc = Vec::with_capacity(17);
                push_varint(rng, v, &mut enc);
                let replaced = rng.below(10).min(len - at);
                buf.splice(at..at + replaced, enc);
            }
            7 if len >= 20 => header_tweak(rng, buf, fps),
            8 => {
                let at = if len == 0 { 0 } else { position(rng, len + 1) };
                if rng.one_in(8) {
                    let depth = 1 + rng.below(400);
                    let open = if rng.one_in(2) { b'[' } else { b'{' };
                    buf.splice(at..at, std::iter::repeat_n(open, depth));
                } else {
                    let tok = rng.pick(&JSON_TOKENS);
                    buf.splice(at..at, tok.iter().copied());
                }
            }
            9 if len > 0 => {
                // A chunk repeated.
                let from = rng.below(len);
                let n = 1 + rng.below(64.min(len - from));
                let times = 1 + rng.below(64);
                let chunk = buf[from..from + n].repeat(times);
                let at = position(rng, len + 1);
                buf.splice(at..at, chunk);
            }
            10 if len > 0 => {
                let at = position(rng, len);
                let d = 1 + rng.below(35) as u8;
                buf[at] = if rng.one_in(2) {
                    buf[at].wrapping_add(d)
                } else {
                    buf[at].wrapping_sub(d)
                };
            }
            11 if len >= 8 => {
                // A 2-, 4- or 8-byte integer overwritten, either byte order.
                let width = rng.pick(&[2usize, 4, 8]);
                let at = rng.below(len - width + 1);
                let v = big_length(rng).to_le_bytes();
                let bytes = &mut buf[at..at + width];
                bytes.copy_from_slice(&v[..width]);
                if rng.one_in(2) {
                    bytes.reverse();
                }
            }
            _ if len > 0 => {
                // Only the codec's bytes kept, behind another seed's header.
                let other = rng.pick_ref(seeds);
                if other.len() >= HEADER_LEN && len > HEADER_LEN {
                    buf[..HEADER_LEN].copy_from_slice(&other[..HEADER_LEN]);
                }
            }
            _ => {}
        }
    }
    buf.truncate(MAX_INPUT);
}

fn header_tweak(rng: &mut Rng, buf: &mut Vec<u8>, fps: &[u64]) {
    match rng.below(6) {
        0 => {
            let at = rng.below(2);
            buf[at] = rng.next() as u8;
        }
        1 => {
            let any = rng.next() as u8;
            buf[2] = rng.pick(&[0, 1, 2, 3, 4, b'L', 255, any]);
        }
        2 => {
            // Down a version properly (the computing time dropped, then the
            // fingerprint), or back up.
            if buf[2] == 3 && buf.len() >= HEADER_LEN {
                buf[2] = 2;
                buf.drain(V2_HEADER_LEN..HEADER_LEN);
            } else if buf[2] == 2 && buf.len() >= V2_HEADER_LEN {
                buf[2] = 1;
                buf.drain(20..V2_HEADER_LEN);
            } else {
                buf[2] = 3;
                buf.splice(20..20, rng.pick(fps).to_be_bytes());
                buf.splice(
                    V2_HEADER_LEN..V2_HEADER_LEN,
                    (rng.next() as u32).to_be_bytes(),
                );
            }
        }
        3 => {
            let any = rng.next() as u8;
            buf[3] = rng.pick(&[b'j', b'b', 200, 201, 0, 127, 128, 255, any]);
        }
        4 => {
            let at = 4 + 8 * rng.below(2);
            let v = if rng.one_in(2) { rng.next() } else { 0 };
            buf[at..at + 8].copy_from_slice(&v.to_be_bytes());
        }
        _ if buf.len() >= HEADER_LEN => {
            let fp = match rng.below(3) {
                0 => 0,
                1 => rng.pick(fps),
                _ => rng.next(),
            };
            buf[20..V2_HEADER_LEN].copy_from_slice(&fp.to_be_bytes());
        }
        _ => {}
    }
}

fn random_bytes(rng: &mut Rng, buf: &mut Vec<u8>, fps: &[u64]) {
    buf.clear();
    if !rng.one_in(3) {
        buf.extend_from_slice(b"CR");
        buf.push(if rng.one_in(4) { 1 } else { 2 });
        buf.push(rng.pick(&CODEC_IDS));
        buf.extend_from_slice(&WRITTEN_AT_MS.to_be_bytes());
        buf.extend_from_slice(&(WRITTEN_AT_MS + 60_000).to_be_bytes());
        if buf[2] == 2 {
            let fp = if rng.one_in(2) { 0 } else { rng.pick(fps) };
            buf.extend_from_slice(&fp.to_be_bytes());
        }
    }
    let n = if rng.one_in(16) {
        rng.below(4096)
    } else {
        rng.below(64)
    };
    for _ in 0..n {
        let b = if rng.one_in(4) {
            rng.pick(&INTERESTING_BYTES)
        } else {
            rng.next() as u8
        };
        buf.push(b);
    }
}

/// Inputs around `max_value_size`: a JSON string and a bincode string of
/// exactly `max_value_size` bytes (valid, decoded), one byte more, and a
/// JSON string of DEL characters.
fn probes() -> Vec<Vec<u8>> {
    let mut json = b"CR\x03j".to_vec();
    json.extend_from_slice(&WRITTEN_AT_MS.to_be_bytes());
    json.extend_from_slice(&(WRITTEN_AT_MS + 60_000).to_be_bytes());
    json.extend_from_slice(&0u64.to_be_bytes());
    json.extend_from_slice(&0u32.to_be_bytes());
    json.push(b'"');
    json.resize(MAX_VALUE_SIZE - 1, b'y');
    json.push(b'"');
    let mut bin = json[..HEADER_LEN].to_vec();
    bin[3] = b'b';
    let n = MAX_VALUE_SIZE - HEADER_LEN - 5;
    bin.push(0xFC);
    bin.extend_from_slice(&(n as u32).to_le_bytes());
    bin.resize(MAX_VALUE_SIZE, b'z');
    let mut over = json.clone();
    over.insert(HEADER_LEN + 1, b'y');
    // DEL is valid unescaped in a JSON string, and `Debug` writes it as
    // six characters: the largest error message per byte read.
    let mut del = json.clone();
    del[HEADER_LEN + 1..MAX_VALUE_SIZE - 1].fill(0x7F);
    vec![json, bin, over, del]
}

// ---------------------------------------------------------------- keys

/// A string rendered by a `Display` that writes it in pieces (cut before
/// character `i` when bit `i % 64` of `cuts` is set), failing after
/// `fail_after` pieces if set.
struct Pieces<'a> {
    text: &'a str,
    cuts: u64,
    fail_after: Option<usize>,
}

impl fmt::Display for Pieces<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut start = 0;
        let mut written = 0;
        let mut piece = |f: &mut fmt::Formatter<'_>, s: &str| {
            if self.fail_after == Some(written) {
                return Err(fmt::Error);
            }
            written += 1;
            f.write_str(s)
        };
        for (i, (at, _)) in self.text.char_indices().enumerate() {
            if at > start && (self.cuts >> (i % 64)) & 1 == 1 {
                piece(f, &self.text[start..at])?;
                start = at;
            }
        }
        piece(f, &self.text[start..])
    }
}

/// The inverse of `key_part`'s escaping; `None` if `part` has a raw `:` or
/// a `%` that is not one of the two escapes.
fn unescape(part: &str) -> Option<String> {
    let mut out = String::with_capacity(part.len());
    let mut rest = part;
    while let Some(at) = rest.find([':', '%']) {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("%3A") => out.push(':'),
            Some("%25") => out.push('%'),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

const KEY_SEEDS: [&str; 28] = [
    "",
    "1",
    "42",
    "1:2",
    "100%",
    "%3A",
    "%25",
    "%5F",
    "%5F_",
    "%255F",
    "__tag",
    "__",
    "_",
    "_one",
    "::",
    "%%",
    "a%3Ab",
    "lamp-42",
    "eu_west",
    "żółw",
    "🐢:🐢",
    "\u{0}",
    "__wb:",
    "x%",
    "%3",
    "%2",
    "_:_",
    "%3a",
];

const KEY_CHARS: [char; 20] = [
    ':', '%', '_', '3', 'A', '2', '5', 'F', 'a', 'z', '0', ' ', '\\', '*', '{', '}', 'é', '🐢',
    '\u{0}', '\u{FFFD}',
];

const PREFIXES: [&str; 6] = ["shop", "", "a*b", "p_", "__", "x%y"];

/// One input of the key targets.
#[derive(Debug, Clone)]
struct KeyCase {
    text: String,
    /// Where `text` is split into the two placeholders' values (a char
    /// boundary).
    split: usize,
    prefix: &'static str,
    int: i64,
    float: f64,
    ch: char,
    cuts: u64,
    /// Set on one input in eight: the `Display` fails after that many pieces.
    fail_after: Option<usize>,
}

fn key_case(rng: &mut Rng, envelope_input: &[u8]) -> KeyCase {
    let mut text = String::new();
    match rng.below(10) {
        0..=3 => {
            text.push_str(rng.pick(&KEY_SEEDS));
            for _ in 0..1 + rng.below(4) {
                let mut chars: Vec<char> = text.chars().collect();
                let at = rng.below(chars.len() + 1);
                match rng.below(4) {
                    0 => chars.insert(at, rng.pick(&KEY_CHARS)),
                    1 if at < chars.len() => {
                        chars.remove(at);
                    }
                    2 => {
                        let other: Vec<char> = rng.pick(&KEY_SEEDS).chars().collect();
                        chars.splice(at..at, other);
                    }
                    _ if at < chars.len() => chars[at] = rng.pick(&KEY_CHARS),
                    _ => {}
                }
                text = chars.into_iter().collect();
            }
        }
        4..=6 => {
            for _ in 0..rng.below(40) {
                text.push(rng.pick(&KEY_CHARS));
            }
        }
        7 | 8 => {
            let from = rng.below(envelope_input.len() + 1);
            let n = rng.below(64).min(envelope_input.len() - from);
            text = String::from_utf8_lossy(&envelope_input[from..from + n]).into_owned();
        }
        _ => {
            for _ in 0..rng.below(1000) {
                let c = if rng.one_in(2) {
                    rng.pick(&KEY_CHARS)
                } else {
                    char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('?')
                };
                text.push(c);
            }
        }
    }
    let boundaries: Vec<usize> = text
        .char_indices()
        .map(|(at, _)| at)
        .chain([text.len()])
        .collect();
    KeyCase {
        split: rng.pick(&boundaries),
        text,
        prefix: rng.pick(&PREFIXES),
        int: rng.next() as i64,
        float: f64::from_bits(rng.next()),
        ch: char::from_u32(rng.below(0x11_0000) as u32).unwrap_or(':'),
        cuts: rng.next(),
        fail_after: if rng.one_in(8) {
            Some(rng.below(4))
        } else {
            None
        },
    }
}

/// Entries of a [`Sample`] before it starts again.
const SAMPLE: usize = 1 << 16;

/// Rendered `key_part`s, to find two values with one rendering.
struct Sample(HashMap<String, String>);

impl Sample {
    fn check(&mut self, rendered: &str, value: &str) -> Result<(), String> {
        if self.0.len() >= SAMPLE {
            self.0.clear();
        }
        match self.0.get(rendered) {
            Some(seen) if seen != value => Err(format!(
                "{seen:?} and {value:?} both render as {rendered:?}"
            )),
            Some(_) => Ok(()),
            None => {
                self.0.insert(rendered.to_owned(), value.to_owned());
                Ok(())
            }
        }
    }
}

fn key_part_target(case: &KeyCase) -> Result<bool, String> {
    let text = case.text.as_str();
    let whole = key_part(text).to_string();
    if whole.contains(':') {
        return Err(format!("{whole:?} has a raw ':'"));
    }
    if unescape(&whole).as_deref() != Some(text) {
        return Err(format!("{whole:?} does not unescape to {text:?}"));
    }
    let pieces = Pieces {
        text,
        cuts: case.cuts,
        fail_after: None,
    };
    let in_pieces = key_part(&pieces).to_string();
    if in_pieces != whole {
        return Err(format!("written in pieces {in_pieces:?}, whole {whole:?}"));
    }
    for (rendered, plain) in [
        (key_part(&case.int).to_string(), case.int.to_string()),
        (key_part(&case.float).to_string(), case.float.to_string()),
        (key_part(&case.ch).to_string(), case.ch.to_string()),
    ] {
        if rendered.contains(':') || unescape(&rendered).as_deref() != Some(plain.as_str()) {
            return Err(format!("{plain:?} renders as {rendered:?}"));
        }
    }
    if let Some(after) = case.fail_after {
        let failing = Pieces {
            text,
            cuts: case.cuts,
            fail_after: Some(after),
        };
        let pieces_in = text
            .char_indices()
            .enumerate()
            .filter(|&(i, (at, _))| at > 0 && (case.cuts >> (i % 64)) & 1 == 1)
            .count()
            + 1;
        let mut out = String::new();
        let result = write!(out, "{}", key_part(&failing));
        if (after < pieces_in) != result.is_err() {
            return Err(format!(
                "a Display failing after {after} of {pieces_in} pieces gave {result:?}"
            ));
        }
    }
    Ok(true)
}

/// A template as fields between its `:`s: a literal, then the value of a
/// placeholder if the field has one.
type Fields<'a> = [(&'a str, Option<&'a str>)];

fn check_key(key: Option<String>, prefix: &str, fields: &Fields<'_>) -> Result<(), String> {
    let key = key.ok_or("no key for a Display that did not fail")?;
    let rel = key
        .strip_prefix(prefix)
        .and_then(|k| k.strip_prefix(':'))
        .ok_or_else(|| format!("{key:?} does not start with {prefix:?} and ':'"))?;
    if rel.starts_with("__") {
        return Err(format!("{key:?} is in the reserved namespace"));
    }
    let got: Vec<&str> = rel.split(':').collect();
    if got.len() != fields.len() {
        return Err(format!(
            "{key:?} has {} fields, the template {}",
            got.len(),
            fields.len()
        ));
    }
    for (i, (field, &(literal, value))) in got.iter().zip(fields).enumerate() {
        let rest = field
            .strip_prefix(literal)
            .ok_or_else(|| format!("{key:?}: field {i} lost its literal {literal:?}"))?;
        let Some(value) = value else {
            if rest.is_empty() {
                continue;
            }
            return Err(format!("{key:?}: field {i} is not the literal {literal:?}"));
        };
        let back = match rest.strip_prefix("%5F") {
            // The reserved-namespace rule's escape, at the very start only.
            Some(after) if i == 0 && literal.is_empty() => unescape(after).map(|s| format!("_{s}")),
            _ => unescape(rest),
        };
        if back.as_deref() != Some(value) {
            return Err(format!(
                "{key:?}: field {i} decodes to {back:?}, the value was {value:?}"
            ));
        }
    }
    Ok(())
}

fn rendered_key_target(case: &KeyCase, sample: &mut Sample) -> Result<bool, String> {
    let (a, b) = case.text.split_at(case.split);
    let prefix = case.prefix;
    let piece = |text| Pieces {
        text,
        cuts: case.cuts,
        fail_after: None,
    };
    let (pa, pb) = (piece(a), piece(b));
    let int = case.int.to_string();
    check_key(
        fuzz_render_key(prefix, format_args!("{}", key_part(&pa))),
        prefix,
        &[("", Some(a))],
    )?;
    let two = fuzz_render_key(prefix, format_args!("{}:{}", key_part(a), key_part(b)));
    if let Some(key) = &two {
        // The pair, not only each value: ("1:2", "3") and ("1", "2:3").
        sample.check(key, &format!("{a:?} {b:?}"))?;
    }
    check_key(two, prefix, &[("", Some(a)), ("", Some(b))])?;
    check_key(
        fuzz_render_key(
            prefix,
            format_args!("product:{}:v{}", key_part(&pa), key_part(&pb)),
        ),
        prefix,
        &[("product", None), ("", Some(a)), ("v", Some(b))],
    )?;
    check_key(
        fuzz_render_key(
            prefix,
            format_args!("user:{}:{}", key_part(&case.int), key_part(b)),
        ),
        prefix,
        &[("user", None), ("", Some(&int)), ("", Some(b))],
    )?;
    if case.fail_after.is_some() {
        let failing = Pieces {
            text: a,
            cuts: case.cuts,
            fail_after: Some(0),
        };
        let key = fuzz_render_key(
            prefix,
            format_args!("{}:{}", key_part(b), key_part(&failing)),
        );
        if let Some(key) = key {
            return Err(format!("a failing Display gave the key {key:?}"));
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------- driver

#[derive(Default)]
struct Stat {
    inputs: u64,
    accepted: u64,
    panics: u64,
    /// Inputs with an allocation above the bound made up front, or else
    /// grown to.
    over_new: u64,
    over_grow: u64,
    violations: u64,
    max_alloc: usize,
    /// The largest allocation per byte of input, of all and of those above
    /// [`FLOOR`].
    max_ratio: Ratio,
    max_ratio_above_floor: Ratio,
    time: Duration,
}

/// An allocation of `alloc` bytes for an input of `len`.
#[derive(Debug, Default, Clone, Copy)]
struct Ratio {
    alloc: usize,
    len: usize,
}

impl Ratio {
    /// Allocated bytes per input byte (an empty input counts as one byte).
    fn value(self) -> f64 {
        self.alloc as f64 / self.len.max(1) as f64
    }
    fn max(self, other: Ratio) -> Ratio {
        if other.value() > self.value() {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.alloc == 0 {
            return f.write_str("-");
        }
        write!(
            f,
            "{:.1}x ({} from {})",
            self.value(),
            human(self.alloc),
            human(self.len)
        )
    }
}

struct Failure {
    target: usize,
    input: Vec<u8>,
    /// Whether the reader's fingerprint was passed (envelope targets).
    schema: bool,
    case: Option<KeyCase>,
    what: String,
}

/// Allocations above the bound of one target and step (the type decoded
/// into): how many inputs, the largest, the first input.
struct OverBound {
    inputs: u64,
    largest: Peaks,
    ratio: Ratio,
    first: Failure,
}

#[derive(Default)]
struct Failures {
    panics: Vec<Failure>,
    over_bound: BTreeMap<(usize, &'static str), OverBound>,
    violations: Vec<Failure>,
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static BACKTRACES_LEFT: AtomicUsize = AtomicUsize::new(SHOW);

fn hex(bytes: &[u8]) -> String {
    const LIMIT: usize = 4096;
    let mut out = String::with_capacity(2 * bytes.len().min(LIMIT) + 32);
    for b in &bytes[..bytes.len().min(LIMIT)] {
        let _ = write!(out, "{b:02x}");
    }
    if bytes.len() > LIMIT {
        let _ = write!(out, "... ({} bytes in all)", bytes.len());
    }
    out
}

/// One input of one target: `schema` and `case` only for the report.
fn run(
    target: usize,
    stats: &mut [Stat],
    failures: &mut Failures,
    (input, schema, case): (&[u8], bool, Option<&KeyCase>),
    f: impl FnOnce() -> Outcome,
) {
    let stat = &mut stats[target];
    stat.inputs += 1;
    Peaks::reset();
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(f));
    stat.time += start.elapsed();
    let mut peaks = Peaks::now();
    let failure = |what: String| Failure {
        target,
        input: input.to_vec(),
        schema,
        case: case.cloned(),
        what,
    };
    match result {
        Ok(out) => {
            stat.accepted += u64::from(out.accepted);
            peaks = peaks.join(out.peaks);
            let peak = peaks.max();
            let bound = bound(input.len());
            if peak > bound {
                if peaks.new > bound {
                    stat.over_new += 1;
                } else {
                    stat.over_grow += 1;
                }
                let step = if out.step.is_empty() { "-" } else { out.step };
                let entry = failures
                    .over_bound
                    .entry((target, step))
                    .or_insert_with(|| OverBound {
                        inputs: 0,
                        largest: Peaks::default(),
                        ratio: Ratio::default(),
                        first: failure(format!(
                            "{} bytes up front, {} grown to, the bound {bound}",
                            peaks.new, peaks.grow
                        )),
                    });
                entry.inputs += 1;
                entry.largest = entry.largest.join(peaks);
                entry.ratio = entry.ratio.max(Ratio {
                    alloc: peak,
                    len: input.len(),
                });
            }
            if let Some(v) = out.violation {
                stat.violations += 1;
                if failures.violations.len() < SHOW {
                    failures.violations.push(failure(v));
                }
            }
        }
        Err(_) => {
            stat.panics += 1;
            let what = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_default();
            if failures.panics.len() < SHOW {
                failures.panics.push(failure(what));
            }
        }
    }
    let ratio = Ratio {
        alloc: peaks.max(),
        len: input.len(),
    };
    stat.max_alloc = stat.max_alloc.max(ratio.alloc);
    stat.max_ratio = stat.max_ratio.max(ratio);
    if ratio.alloc > FLOOR {
        stat.max_ratio_above_floor = stat.max_ratio_above_floor.max(ratio);
    }
}

fn key_outcome(result: Result<bool, String>) -> Outcome {
    match result {
        Ok(accepted) => Outcome {
            accepted,
            ..Outcome::default()
        },
        Err(v) => Outcome {
            violation: Some(v),
            ..Outcome::default()
        },
    }
}

fn human(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.2} MiB", bytes as f64 / f64::from(1 << 20))
    } else if bytes >= 1 << 10 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .map(|s| s.replace(['_', ','], "").parse().expect("inputs: a number"))
        .unwrap_or(10_000_000);
    let seed: u64 = args
        .next()
        .map(|s| s.parse().expect("seed: a number"))
        .unwrap_or(1);
    let mut rng = Rng(seed);

    std::panic::set_hook(Box::new(|info| {
        let mut what = info.to_string();
        if BACKTRACES_LEFT
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            let trace = std::backtrace::Backtrace::force_capture();
            let _ = write!(what, "\n{trace}");
        }
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(what));
    }));

    let codecs = codecs();
    let fps: Vec<u64> = with_types!(fingerprints);
    let names: Vec<&str> = with_types!(type_names);
    let seeds = seeds(&codecs);
    let probes = probes();
    let mut target_names: Vec<&str> = CODEC_NAMES.to_vec();
    target_names.extend(["key_part", "rendered key"]);
    let mut stats: Vec<Stat> = target_names.iter().map(|_| Stat::default()).collect();
    let mut failures = Failures::default();
    // Allocated in full now, so that no growth happens inside a measured call.
    let mut sample = Sample(HashMap::with_capacity(SAMPLE));
    let mut part_sample = Sample(HashMap::with_capacity(SAMPLE));
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_INPUT + 4096);

    eprintln!(
        "fuzz: {total} inputs, seed {seed}; {} seeds ({} of {} decode back to their value), {} types \
         ({} with a schema fingerprint); max_value_size {MAX_VALUE_SIZE}; bound: the larger of \
         {FLOOR} bytes and {PER_BYTE} per input byte",
        seeds.all.len(),
        seeds.round_trips,
        seeds.expected,
        names.len(),
        fps.iter().filter(|&&f| f != 0).count(),
    );
    let started = Instant::now();
    for i in 0..total {
        let kind = rng.below(100);
        let input: &[u8] = if i % 100_000 == 99_999 {
            &probes[(i / 100_000) as usize % probes.len()]
        } else {
            match kind {
                0..=79 => {
                    buf.clear();
                    buf.extend_from_slice(seeds.pick(&mut rng));
                    mutate(&mut rng, &mut buf, &seeds.all, &fps);
                }
                80..=84 => {
                    buf.clear();
                    buf.extend_from_slice(seeds.pick(&mut rng));
                }
                _ => random_bytes(&mut rng, &mut buf, &fps),
            }
            &buf
        };
        let schema = rng.one_in(2);
        for (t, codec) in codecs.iter().enumerate() {
            run(t, &mut stats, &mut failures, (input, schema, None), || {
                decode_all(input, codec, &fps, schema, None)
            });
        }
        let case = key_case(&mut rng, input);
        let text = case.text.as_bytes();
        run(
            4,
            &mut stats,
            &mut failures,
            (text, false, Some(&case)),
            || {
                let mut out = key_outcome(key_part_target(&case));
                if out.violation.is_none() {
                    let whole = key_part(case.text.as_str()).to_string();
                    if let Err(v) = part_sample.check(&whole, &case.text) {
                        out.violation = Some(v);
                    }
                }
                out
            },
        );
        run(
            5,
            &mut stats,
            &mut failures,
            (text, false, Some(&case)),
            || key_outcome(rendered_key_target(&case, &mut sample)),
        );
        if (i + 1) % 1_000_000 == 0 {
            eprintln!(
                "  {} inputs, {:.0} s, panics {}, above the bound {}, failed properties {}",
                i + 1,
                started.elapsed().as_secs_f64(),
                stats.iter().map(|s| s.panics).sum::<u64>(),
                stats.iter().map(|s| s.over_new + s.over_grow).sum::<u64>(),
                stats.iter().map(|s| s.violations).sum::<u64>(),
            );
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    println!(
        "fuzz: {total} inputs per target, seed {seed}, {elapsed:.0} s in all; max_value_size {} ({MAX_VALUE_SIZE} B); \
         bound: no single allocation above {} or {PER_BYTE} x the input's length, whichever is larger\n",
        human(MAX_VALUE_SIZE),
        human(FLOOR),
    );
    println!(
        "| target | inputs | accepted | panics | > bound, up front | > bound, grown | failed properties | max allocation | max ratio | max ratio above {} | seconds | inputs/s |",
        human(FLOOR)
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, s) in target_names.iter().zip(&stats) {
        let secs = s.time.as_secs_f64();
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {secs:.1} | {:.0} |",
            s.inputs,
            s.accepted,
            s.panics,
            s.over_new,
            s.over_grow,
            s.violations,
            human(s.max_alloc),
            s.max_ratio,
            s.max_ratio_above_floor,
            s.inputs as f64 / secs.max(1e-9),
        );
    }

    let show = |kind: &str, list: &[Failure]| {
        for f in list {
            println!(
                "\n{kind} in {}: {}\ninput ({} bytes): {}",
                target_names[f.target],
                f.what,
                f.input.len(),
                hex(&f.input)
            );
            if let Some(case) = &f.case {
                println!("key case: {case:?}");
            }
        }
    };
    show("panic", &failures.panics);
    show("failed property", &failures.violations);
    if !failures.over_bound.is_empty() {
        println!("\nallocations above the bound, by target and step:\n");
        println!(
            "| target | decoding into | inputs | largest up front | largest grown to | largest ratio |"
        );
        println!("|---|---|---:|---:|---:|---:|");
        for ((target, step), o) in &failures.over_bound {
            println!(
                "| {} | `{}` | {} | {} | {} | {} |",
                target_names[*target],
                step.replace(' ', ""),
                o.inputs,
                human(o.largest.new),
                human(o.largest.grow),
                o.ratio,
            );
        }
    }
    for ((target, step), o) in &failures.over_bound {
        let f = &o.first;
        println!(
            "\nfirst allocation above the bound in {} decoding into {step}: {}; reader's fingerprint passed: {}\ninput ({} bytes): {}",
            target_names[*target],
            f.what,
            f.schema,
            f.input.len(),
            hex(&f.input)
        );
        if let Some(case) = &f.case {
            println!("key case: {case:?}");
        }
        // Where: the same decode again, a backtrace printed (on stderr) at
        // each allocation above the bound.
        if *target < codecs.len() {
            eprintln!(
                "\n{} decoding into {step}, the first input above the bound again:",
                target_names[*target]
            );
            TRAP_BOUND.store(bound(f.input.len()), Relaxed);
            TRAP.store(true, Relaxed);
            black_box(decode_all(
                &f.input,
                &codecs[*target],
                &fps,
                f.schema,
                Some(step),
            ));
            TRAP.store(false, Relaxed);
        }
    }
    let bad = stats
        .iter()
        .map(|s| s.panics + s.over_new + s.over_grow + s.violations)
        .sum::<u64>();
    if bad > 0 {
        std::process::exit(1);
    }
}

//! Value formats: the [`Codec`] trait and the built-in JSON and binary codecs.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// An error from a [`Codec`]: the message of the underlying format library,
/// cut to its first [`MAX_MESSAGE_CHARS`](CodecError::MAX_MESSAGE_CHARS)
/// characters.
///
/// ```
/// use cache_runtime::CodecError;
/// let e = CodecError::new("unexpected end of input");
/// assert_eq!(e.to_string(), "unexpected end of input");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CodecError {
    message: String,
}

impl CodecError {
    /// The most characters of a message an error keeps; a longer one is cut
    /// there (on a character boundary) and ends in `…`.
    ///
    /// Format libraries quote the input in their messages: `serde_json`
    /// reading a string as another type writes `invalid type: string "..."`
    /// with the whole string, escaped (up to six bytes per byte of input).
    /// That message is built inside the library and cannot be avoided, but an
    /// error kept in a log line or a `Result` holds at most this much of it.
    pub const MAX_MESSAGE_CHARS: usize = 256;

    /// An error with this message, cut to
    /// [`MAX_MESSAGE_CHARS`](Self::MAX_MESSAGE_CHARS) characters.
    ///
    /// ```
    /// use cache_runtime::CodecError;
    /// let e = CodecError::new("bad tag");
    /// assert_eq!(e.message(), "bad tag");
    ///
    /// let long = CodecError::new(format_args!("invalid type: string {:?}", "x".repeat(1000)));
    /// assert_eq!(long.message().chars().count(), CodecError::MAX_MESSAGE_CHARS + 1);
    /// assert!(long.message().ends_with('…'));
    /// ```
    pub fn new(message: impl fmt::Display) -> Self {
        /// Keeps the first `MAX_MESSAGE_CHARS` characters written, then
        /// fails the write, which stops the formatting.
        struct Capped {
            message: String,
            room: usize,
            cut: bool,
        }
        impl fmt::Write for Capped {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                match s.char_indices().nth(self.room) {
                    None => {
                        self.message.push_str(s);
                        self.room -= s.chars().count();
                        Ok(())
                    }
                    Some((end, _)) => {
                        self.message.push_str(&s[..end]);
                        self.room = 0;
                        self.cut = true;
                        Err(fmt::Error)
                    }
                }
            }
        }
        let mut capped = Capped {
            message: String::new(),
            room: Self::MAX_MESSAGE_CHARS,
            cut: false,
        };
        // An error here is the cut, or a `Display` that failed: either way the
        // message is what was written.
        let _ = fmt::write(&mut capped, format_args!("{message}"));
        if capped.cut {
            capped.message.push('…');
        }
        CodecError {
            message: capped.message,
        }
    }

    /// The message.
    ///
    /// ```
    /// assert_eq!(cache_runtime::CodecError::new("x").message(), "x");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A serialization format for cached values.
///
/// The built-in [`JsonCodec`] (the default) and `BincodeCodec` (feature
/// `bincode`) are dispatched statically; a codec of your own goes through this
/// object-safe trait, built on [`erased_serde`]. Its [`id`](Codec::id) is
/// written into every stored value, so a value written with another codec is
/// recognised and treated as a miss. Ids below 128 are reserved for the
/// built-in codecs.
///
/// ```
/// use cache_runtime::{Cache, Codec, CodecError};
///
/// /// JSON without the envelope's id clash: a user codec with its own id.
/// struct PrettyJson;
///
/// impl Codec for PrettyJson {
///     fn id(&self) -> u8 { 200 }
///     fn name(&self) -> &'static str { "pretty-json" }
///     fn encode(&self, value: &dyn erased_serde::Serialize, out: &mut Vec<u8>) -> Result<(), CodecError> {
///         serde_json::to_writer_pretty(out, value).map_err(CodecError::new)
///     }
///     fn decode(
///         &self,
///         bytes: &[u8],
///         visit: &mut dyn FnMut(&mut dyn erased_serde::Deserializer<'_>) -> Result<(), erased_serde::Error>,
///     ) -> Result<(), CodecError> {
///         let mut de = serde_json::Deserializer::from_slice(bytes);
///         visit(&mut <dyn erased_serde::Deserializer>::erase(&mut de)).map_err(CodecError::new)
///     }
/// }
///
/// let cache = Cache::builder().memory().codec(PrettyJson).build().unwrap();
/// # drop(cache);
/// ```
pub trait Codec: Send + Sync + 'static {
    /// The id stored in each value's envelope; 128..=255 for user codecs.
    fn id(&self) -> u8;
    /// A short name for logs and `Debug` output.
    fn name(&self) -> &'static str;
    /// Appends the encoding of `value` to `out`.
    ///
    /// # Errors
    ///
    /// When the value cannot be represented in this format.
    fn encode(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError>;
    /// Decodes `bytes` by handing a deserializer over them to `visit`.
    ///
    /// # Errors
    ///
    /// When the bytes are not a valid encoding of the requested type.
    fn decode(
        &self,
        bytes: &[u8],
        visit: &mut dyn FnMut(
            &mut dyn erased_serde::Deserializer<'_>,
        ) -> Result<(), erased_serde::Error>,
    ) -> Result<(), CodecError>;

    #[doc(hidden)]
    fn __builtin(&self) -> Option<Builtin> {
        None
    }
}

#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Json,
    #[cfg(feature = "bincode")]
    Bincode,
}

/// JSON through `serde_json`: the default codec, readable with `redis-cli GET`.
///
/// ```
/// use cache_runtime::{Cache, JsonCodec};
/// let cache = Cache::builder().memory().codec(JsonCodec).build().unwrap();
/// # drop(cache);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

impl JsonCodec {
    const ID: u8 = b'j';
}

impl Codec for JsonCodec {
    fn id(&self) -> u8 {
        Self::ID
    }
    fn name(&self) -> &'static str {
        "json"
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
    fn __builtin(&self) -> Option<Builtin> {
        Some(Builtin::Json)
    }
}

/// A compact binary codec: bincode 2 in its standard configuration
/// (variable-length integers), with decoding allocations bounded.
///
/// Smaller and faster than JSON, but not readable in `redis-cli`, and values
/// are not self-describing: a struct that changes shape decodes as a miss.
///
/// ```
/// use cache_runtime::{BincodeCodec, Cache};
/// let cache = Cache::builder().memory().codec(BincodeCodec).build().unwrap();
/// # drop(cache);
/// ```
#[cfg(feature = "bincode")]
#[cfg_attr(docsrs, doc(cfg(feature = "bincode")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct BincodeCodec;

#[cfg(feature = "bincode")]
mod bincode_impl {
    use super::*;

    pub(super) fn config() -> impl bincode::config::Config {
        bincode::config::standard()
    }

    /// The memory limits a decode can be given, powers of 4 from 64 KiB to
    /// 1 GiB. The limit is a const generic of bincode's configuration, so
    /// every tier is another copy of bincode's decoder for each type decoded,
    /// at each of the two call sites below: eight tiers compile eight copies
    /// (twice the code and build time of the four tiers of 64 KiB, 1 MiB,
    /// 32 MiB and 1 GiB before). Powers of 4 are the coarsest steps that keep
    /// the limit within 4x the need.
    pub(super) const LIMITS: [usize; 8] = [
        64 << 10,
        256 << 10,
        1 << 20,
        4 << 20,
        16 << 20,
        64 << 20,
        256 << 20,
        1 << 30,
    ];

    /// Bytes a decode may claim per input byte. bincode counts every value
    /// it reads at its size in memory: a `u64` or a string length read from
    /// a one-byte varint claims 8, a `u128` 16, so valid data stays within
    /// 16 per byte and 32 leaves room.
    pub(super) const CLAIM_PER_BYTE: usize = 32;

    /// The index in [`LIMITS`] of the limit for `len` input bytes: the
    /// smallest tier of at least `CLAIM_PER_BYTE` x `len`, or the last (1 GiB,
    /// then below the need) above 32 MiB of input. So the limit is at most
    /// 64 KiB or 128 x `len`, whichever is larger, and nothing bincode
    /// allocates for a claimed length is larger than the limit.
    pub(super) fn tier(len: usize) -> usize {
        let need = len.saturating_mul(CLAIM_PER_BYTE);
        LIMITS
            .iter()
            .position(|&limit| need <= limit)
            .unwrap_or(LIMITS.len() - 1)
    }

    /// Runs `$decode` with a bincode configuration whose memory limit fits
    /// `$len` input bytes ([`tier`]), so a corrupt length prefix cannot make
    /// bincode allocate more than 64 KiB or 128 bytes per byte of the value: it
    /// allocates a string's claimed length before reading the bytes, and only
    /// the limit refuses a length the input cannot hold.
    macro_rules! with_limit_for {
        ($len:expr, |$config:ident| $decode:expr) => {{
            match tier($len) {
                0 => {
                    let $config = bincode::config::standard().with_limit::<{ LIMITS[0] }>();
                    $decode
                }
                1 => {
                    let $config = bincode::config::standard().with_limit::<{ LIMITS[1] }>();
                    $decode
                }
                2 => {
                    let $config = bincode::config::standard().with_limit::<{ LIMITS[2] }>();
                    $decode
                }
                3 => {
                    let $config = bincode::config::standard().with_limit::<{ LIMITS[3] }>();
                    $decode
                }
                4 => {
                    let $config = bincode::config::standard().with_limit::<{ LIMITS[4] }>();
                    $decode
                }
                5 => {
                    let $config = bincode::config::standard().with_limit::<{ LIMITS[5] }>();
                    $decode
                }
                6 => {
                    let $config = bincode::config::standard().with_limit::<{ LIMITS[6] }>();
                    $decode
                }
                _ => {
                    let $config = bincode::config::standard().with_limit::<{ LIMITS[7] }>();
                    $decode
                }
            }
        }};
    }

    pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
        with_limit_for!(bytes.len(), |config| bincode::serde::decode_from_slice(
            bytes, config
        ))
        .map_err(CodecError::new)
    }

    impl BincodeCodec {
        pub(crate) const ID: u8 = b'b';
    }

    impl Codec for BincodeCodec {
        fn id(&self) -> u8 {
            Self::ID
        }
        fn name(&self) -> &'static str {
            "bincode"
        }
        fn encode(
            &self,
            value: &dyn erased_serde::Serialize,
            out: &mut Vec<u8>,
        ) -> Result<(), CodecError> {
            bincode::serde::encode_into_std_write(value, out, config())
                .map(drop)
                .map_err(CodecError::new)
        }
        fn decode(
            &self,
            bytes: &[u8],
            visit: &mut dyn FnMut(
                &mut dyn erased_serde::Deserializer<'_>,
            ) -> Result<(), erased_serde::Error>,
        ) -> Result<(), CodecError> {
            // bincode is not self-describing and has no erased deserializer of its
            // own; route through a small seed type instead.
            struct Visit<'v, 'f>(
                &'v mut dyn FnMut(
                    &mut dyn erased_serde::Deserializer<'_>,
                ) -> Result<(), erased_serde::Error>,
                std::marker::PhantomData<&'f ()>,
            );
            impl<'de> serde::de::DeserializeSeed<'de> for Visit<'_, '_> {
                type Value = ();
                fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                    let mut erased = <dyn erased_serde::Deserializer>::erase(d);
                    (self.0)(&mut erased).map_err(serde::de::Error::custom)
                }
            }
            let seed = Visit(visit, std::marker::PhantomData);
            let ((), used) = with_limit_for!(bytes.len(), |config| {
                bincode::serde::seed_decode_from_slice(seed, bytes, config)
            })
            .map_err(CodecError::new)?;
            if used != bytes.len() {
                return Err(CodecError::new(format_args!(
                    "{} trailing bytes",
                    bytes.len() - used
                )));
            }
            Ok(())
        }
        fn __builtin(&self) -> Option<Builtin> {
            Some(Builtin::Bincode)
        }
    }
}

/// The codec a cache uses: built-ins dispatched statically, others boxed.
#[derive(Clone)]
pub(crate) enum CodecImpl {
    Json,
    #[cfg(feature = "bincode")]
    Bincode,
    Custom(Arc<dyn Codec>),
}

impl fmt::Debug for CodecImpl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl CodecImpl {
    pub(crate) fn from_codec<C: Codec>(codec: C) -> Self {
        match codec.__builtin() {
            Some(Builtin::Json) => CodecImpl::Json,
            #[cfg(feature = "bincode")]
            Some(Builtin::Bincode) => CodecImpl::Bincode,
            None => CodecImpl::Custom(Arc::new(codec)),
        }
    }

    pub(crate) fn id(&self) -> u8 {
        match self {
            CodecImpl::Json => JsonCodec::ID,
            #[cfg(feature = "bincode")]
            CodecImpl::Bincode => BincodeCodec::ID,
            CodecImpl::Custom(c) => c.id(),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            CodecImpl::Json => "json",
            #[cfg(feature = "bincode")]
            CodecImpl::Bincode => "bincode",
            CodecImpl::Custom(c) => c.name(),
        }
    }

    pub(crate) fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        match self {
            CodecImpl::Json => serde_json::to_writer(out, value).map_err(CodecError::new),
            #[cfg(feature = "bincode")]
            CodecImpl::Bincode => {
                bincode::serde::encode_into_std_write(value, out, bincode_impl::config())
                    .map(drop)
                    .map_err(CodecError::new)
            }
            CodecImpl::Custom(c) => c.encode(&value as &dyn erased_serde::Serialize, out),
        }
    }

    pub(crate) fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        match self {
            CodecImpl::Json => serde_json::from_slice(bytes).map_err(CodecError::new),
            #[cfg(feature = "bincode")]
            CodecImpl::Bincode => {
                let (value, used) = bincode_impl::decode(bytes)?;
                if used != bytes.len() {
                    return Err(CodecError::new(format_args!(
                        "{} trailing bytes",
                        bytes.len() - used
                    )));
                }
                Ok(value)
            }
            CodecImpl::Custom(c) => {
                let mut slot = None;
                c.decode(bytes, &mut |de| {
                    slot = Some(erased_serde::deserialize::<T>(de)?);
                    Ok(())
                })?;
                slot.ok_or_else(|| CodecError::new("the codec produced no value"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_codec_message_is_cut_on_a_char_boundary() {
        let max = CodecError::MAX_MESSAGE_CHARS;
        let short = "x".repeat(max);
        assert_eq!(CodecError::new(&short).message(), short);
        // Two-byte characters, the cut after an odd number of bytes.
        let long = format!("a{}", "é".repeat(10 * max));
        let e = CodecError::new(&long);
        assert_eq!(e.message().chars().count(), max + 1);
        assert!(e.message().ends_with('…'));
        assert!(long.starts_with(e.message().trim_end_matches('…')));
        // Written in many pieces, as `format_args!` does.
        let e = CodecError::new(format_args!(
            "{}{}{}",
            "ab".repeat(100),
            7,
            "cd".repeat(100)
        ));
        assert_eq!(e.message().chars().count(), max + 1);
        assert!(e.message().starts_with(&"ab".repeat(100)));
    }

    #[test]
    fn a_json_message_quoting_the_whole_value_is_not_kept_whole() {
        // A string of DEL characters read as a number: serde_json quotes the
        // string `Debug`-escaped, six bytes per byte of input.
        let json = format!("\"{}\"", "\u{7f}".repeat(100_000));
        let e = CodecImpl::Json.decode::<u64>(json.as_bytes()).unwrap_err();
        assert!(e.message().starts_with("invalid type: string"), "{e}");
        assert!(e.message().len() < 4 * CodecError::MAX_MESSAGE_CHARS + 4);
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn the_bincode_limit_is_at_most_128_bytes_per_input_byte() {
        use bincode_impl::{tier, CLAIM_PER_BYTE, LIMITS};
        let mut lens: Vec<usize> = vec![0, 1, 2, 28, 2047, 2048, 2049, usize::MAX];
        for limit in LIMITS {
            let n = limit / CLAIM_PER_BYTE;
            lens.extend([n - 1, n, n + 1, n + n / 2]);
        }
        for len in lens {
            let limit = LIMITS[tier(len)];
            assert!(
                limit <= (64 << 10).max(len.saturating_mul(128)),
                "{len} bytes: limit {limit}"
            );
            // And the budget of 32 per byte, up to the last tier.
            assert!(
                limit >= len.saturating_mul(CLAIM_PER_BYTE).min(1 << 30),
                "{len} bytes: limit {limit}"
            );
        }
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn a_small_bincode_value_claiming_a_huge_string_is_refused_before_allocating() {
        // A string length of 64 MiB (a 4-byte varint) and three bytes of text.
        let mut bytes = vec![0xFC];
        bytes.extend_from_slice(&(64u32 << 20).to_le_bytes());
        bytes.extend_from_slice(b"abc");
        // bincode refuses the claim against the limit (64 KiB here) before it
        // allocates: without a limit the same bytes allocate 64 MiB, then fail
        // on the missing text (`UnexpectedEnd`).
        for e in [
            CodecImpl::Bincode.decode::<String>(&bytes).unwrap_err(),
            CodecImpl::Custom(Arc::new(BincodeCodec))
                .decode::<String>(&bytes)
                .unwrap_err(),
        ] {
            assert!(e.message().contains("LimitExceeded"), "{e}");
        }
        // Just inside the limit the claim is accepted, and the bytes are
        // missing.
        let mut bytes = vec![0xFC];
        bytes.extend_from_slice(&((64u32 << 10) - 16).to_le_bytes());
        let e = CodecImpl::Bincode.decode::<String>(&bytes).unwrap_err();
        assert!(e.message().contains("UnexpectedEnd"), "{e}");
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn bincode_values_claiming_16_bytes_per_byte_decode_in_every_tier() {
        // `u128`s of one varint byte each: the most a valid value claims per
        // input byte, around each tier's edge.
        for limit in bincode_impl::LIMITS.into_iter().take(5) {
            for n in [limit / 32 - 8, limit / 32 + 8] {
                let value: Vec<u128> = (0..n as u128).map(|i| i % 200).collect();
                let mut bytes = Vec::new();
                CodecImpl::Bincode.encode(&value, &mut bytes).unwrap();
                let back: Vec<u128> = CodecImpl::Bincode.decode(&bytes).unwrap();
                assert_eq!(back, value, "{n} values");
            }
        }
    }
}

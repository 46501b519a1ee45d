//! The envelope in front of every stored value.
//!
//! ```text
//! offset  size  field
//! 0       2     magic "CR"
//! 2       1     envelope format version (3)
//! 3       1     codec id ('j' JSON, 'b' bincode, 128..=255 user codecs)
//! 4       8     written-at, milliseconds since the Unix epoch, big-endian
//! 12      8     fresh-until, milliseconds since the Unix epoch, big-endian
//! 20      8     schema fingerprint of the stored type, big-endian (0: unknown)
//! 28      4     how long the value took to compute, ms, big-endian (0: unknown)
//! 32      ..    the codec's bytes
//! ```
//!
//! While a value is being computed under the fill lock, its key holds a
//! placeholder instead: "CR", `L`, and the lock holder's 16-byte random
//! token (19 bytes in all, shorter than any header, so a reader of an
//! older version takes it for foreign bytes: a miss).
//!
//! The header is 32 bytes; with JSON the rest reads as plain JSON in
//! `redis-cli GET`. Fresh-until is what `stale` and `early_refresh` read;
//! the computing time is early refresh's Δ. A value whose fingerprint
//! differs from the reader's (both known) was written for another shape of
//! the type: it is a miss. Version 2 (the same without the computing time,
//! a 28-byte header) and version 1 (also without the fingerprint, 20 bytes)
//! are still read, with those fields "unknown".

use crate::backend::millis;
use crate::codec::CodecImpl;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC: [u8; 2] = *b"CR";
const VERSION: u8 = 3;
/// The header written today (version 3).
pub(crate) const HEADER_LEN: usize = 32;
/// Version 2's header, without the computing time.
const V2_HEADER_LEN: usize = 28;
/// Version 1's header, without the fingerprint.
const V1_HEADER_LEN: usize = 20;

/// The placeholder's marker, where a value has its format version.
const LOCK: u8 = b'L';
/// The marker of a placeholder whose holder ended without a value to
/// store (a `None` the policy does not keep): callers load without the
/// lock while it lasts.
const GAVE_UP: u8 = b'N';
/// How a gave-up placeholder starts, whatever its token.
pub(crate) const GAVE_UP_PREFIX: &[u8] = b"CRN";
/// The placeholder's length: magic, marker, token.
pub(crate) const PLACEHOLDER_LEN: usize = 19;

/// The fill lock's placeholder: held at an entry's key while one caller
/// (in any process) computes its value. Each is unique: the token is
/// random, so a holder can tell its own placeholder from a successor's.
pub(crate) type Placeholder = [u8; PLACEHOLDER_LEN];

/// A fresh placeholder with a random token.
pub(crate) fn placeholder() -> Placeholder {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = [0u8; PLACEHOLDER_LEN];
    out[..2].copy_from_slice(&MAGIC);
    out[2] = LOCK;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Two words from independently seeded hashers (each `RandomState` has
    // its own random keys), over a counter and the clock.
    for (i, chunk) in out[3..].chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u128(nanos);
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    out
}

/// Whether `bytes` is a fill lock's placeholder (held, or given up), not a
/// value.
pub(crate) fn is_placeholder(bytes: &[u8]) -> bool {
    bytes.len() == PLACEHOLDER_LEN && bytes[..2] == MAGIC && matches!(bytes[2], LOCK | GAVE_UP)
}

/// Whether `bytes` is a placeholder whose holder gave up without a value.
pub(crate) fn is_gave_up(bytes: &[u8]) -> bool {
    is_placeholder(bytes) && bytes[2] == GAVE_UP
}

/// `held`, marked given up.
pub(crate) fn gave_up(held: &Placeholder) -> Placeholder {
    let mut marked = *held;
    marked[2] = GAVE_UP;
    marked
}

/// Why stored bytes were not accepted as a value (each one is a miss).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("a fill lock's placeholder: the value is being computed")]
    Placeholder,
    #[error("value of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("not written by this library (no envelope)")]
    NoEnvelope,
    #[error("envelope format version {0} is not supported")]
    Version(u8),
    #[error("written with codec id {found}, this cache uses {expected}")]
    OtherCodec { found: u8, expected: u8 },
    #[error("written for another shape of the type (schema fingerprint {found:#x}, this build reads {expected:#x})")]
    OtherSchema { found: u64, expected: u64 },
    #[error("codec: {0}")]
    Codec(#[from] crate::codec::CodecError),
}

/// The header fields of a stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) codec: u8,
    pub(crate) written_at_ms: u64,
    pub(crate) fresh_until_ms: u64,
    /// The stored type's schema fingerprint; 0 when unknown.
    pub(crate) fingerprint: u64,
    /// How long the value took to compute, in ms; 0 when unknown.
    pub(crate) load_ms: u32,
    /// Where the codec's bytes start.
    pub(crate) len: usize,
}

/// The wall clock in ms since the Unix epoch, shifted by how far tokio's
/// clock stands from the system's monotonic clock: no shift in production;
/// under tokio's paused clock (the mock's tests), a value goes stale when
/// the test advances time, as the mock's entries expire.
pub(crate) fn now_ms() -> u64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis);
    let tokio_now = tokio::time::Instant::now().into_std();
    let std_now = std::time::Instant::now();
    match tokio_now.checked_duration_since(std_now) {
        Some(ahead) => wall.saturating_add(millis(ahead)),
        None => wall.saturating_sub(millis(std_now.duration_since(tokio_now))),
    }
}

/// Encodes `value` into a new buffer: header, then the codec's bytes; its
/// schema fingerprint unknown (the writer's type has no `Deserialize`).
pub(crate) fn encode<T: Serialize + ?Sized>(
    codec: &CodecImpl,
    value: &T,
    ttl: Duration,
    max_len: usize,
) -> Result<Vec<u8>, String> {
    encode_schema(codec, value, ttl, max_len, 0)
}

/// [`encode`], recording the stored type's schema `fingerprint`.
pub(crate) fn encode_schema<T: Serialize + ?Sized>(
    codec: &CodecImpl,
    value: &T,
    ttl: Duration,
    max_len: usize,
    fingerprint: u64,
) -> Result<Vec<u8>, String> {
    encode_loaded(codec, value, ttl, max_len, fingerprint, Duration::ZERO)
}

/// [`encode_schema`], recording that the value took `load` to compute.
pub(crate) fn encode_loaded<T: Serialize + ?Sized>(
    codec: &CodecImpl,
    value: &T,
    ttl: Duration,
    max_len: usize,
    fingerprint: u64,
    load: Duration,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(HEADER_LEN + 128);
    let written = now_ms();
    let ttl_ms = millis(ttl);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(codec.id());
    out.extend_from_slice(&written.to_be_bytes());
    out.extend_from_slice(&written.saturating_add(ttl_ms).to_be_bytes());
    out.extend_from_slice(&fingerprint.to_be_bytes());
    let load_ms = u32::try_from(load.as_millis()).unwrap_or(u32::MAX);
    out.extend_from_slice(&load_ms.to_be_bytes());
    codec.encode(value, &mut out).map_err(|e| e.to_string())?;
    if out.len() > max_len {
        return Err(format!(
            "the encoded value is {} bytes, above the maximum value size of {max_len}",
            out.len()
        ));
    }
    Ok(out)
}

/// Reads the header of `bytes`, checking size, magic, version and codec.
pub(crate) fn header(
    bytes: &[u8],
    codec: &CodecImpl,
    max_len: usize,
) -> Result<Header, DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    if is_placeholder(bytes) {
        return Err(DecodeError::Placeholder);
    }
    if bytes.len() < V1_HEADER_LEN || bytes[..2] != MAGIC {
        return Err(DecodeError::NoEnvelope);
    }
    let len = match bytes[2] {
        1 => V1_HEADER_LEN,
        2 if bytes.len() >= V2_HEADER_LEN => V2_HEADER_LEN,
        VERSION if bytes.len() >= HEADER_LEN => HEADER_LEN,
        2 | VERSION => return Err(DecodeError::NoEnvelope),
        other => return Err(DecodeError::Version(other)),
    };
    let expected = codec.id();
    if bytes[3] != expected {
        return Err(DecodeError::OtherCodec {
            found: bytes[3],
            expected,
        });
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_be_bytes(b)
    };
    Ok(Header {
        codec: bytes[3],
        written_at_ms: word(4),
        fresh_until_ms: word(12),
        fingerprint: if len >= V2_HEADER_LEN { word(20) } else { 0 },
        load_ms: if len == HEADER_LEN {
            u32::from_be_bytes([bytes[28], bytes[29], bytes[30], bytes[31]])
        } else {
            0
        },
        len,
    })
}

/// Decodes a stored value: envelope checks, then the codec.
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    codec: &CodecImpl,
    max_len: usize,
) -> Result<T, DecodeError> {
    decode_schema(bytes, codec, max_len, 0)
}

/// [`decode`], refusing a value written for another shape of the type:
/// `expected` is the reader's fingerprint (0: unknown, no check), and a
/// stored 0 is accepted too.
pub(crate) fn decode_schema<T: DeserializeOwned>(
    bytes: &[u8],
    codec: &CodecImpl,
    max_len: usize,
    expected: u64,
) -> Result<T, DecodeError> {
    let header = header(bytes, codec, max_len)?;
    let found = header.fingerprint;
    if found != expected && found != 0 && expected != 0 {
        return Err(DecodeError::OtherSchema { found, expected });
    }
    Ok(codec.decode(&bytes[header.len..])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn a_value_written_for_another_shape_is_refused() {
        let codec = CodecImpl::Json;
        let bytes = encode_schema(&codec, &7u32, Duration::from_secs(1), MAX, 0xAB).unwrap();
        assert_eq!(header(&bytes, &codec, MAX).unwrap().fingerprint, 0xAB);
        assert_eq!(decode_schema::<u32>(&bytes, &codec, MAX, 0xAB).unwrap(), 7);
        assert!(matches!(
            decode_schema::<u32>(&bytes, &codec, MAX, 0xCD),
            Err(DecodeError::OtherSchema {
                found: 0xAB,
                expected: 0xCD
            })
        ));
        // Unknown on either side: no check.
        assert_eq!(decode_schema::<u32>(&bytes, &codec, MAX, 0).unwrap(), 7);
        let unknown = encode(&codec, &7u32, Duration::from_secs(1), MAX).unwrap();
        assert_eq!(
            decode_schema::<u32>(&unknown, &codec, MAX, 0xCD).unwrap(),
            7
        );
    }

    #[test]
    fn version_one_and_two_values_are_still_read() {
        let codec = CodecImpl::Json;
        let v3 = encode_loaded(
            &codec,
            &"old",
            Duration::from_secs(60),
            MAX,
            0xAB,
            Duration::from_millis(250),
        )
        .unwrap();
        let h = header(&v3, &codec, MAX).unwrap();
        assert_eq!((h.fingerprint, h.load_ms, h.len), (0xAB, 250, 32));
        // The same value as version 2 wrote it: no computing time.
        let mut v2 = v3[..V2_HEADER_LEN].to_vec();
        v2[2] = 2;
        v2.extend_from_slice(&v3[HEADER_LEN..]);
        let h = header(&v2, &codec, MAX).unwrap();
        assert_eq!((h.fingerprint, h.load_ms, h.len), (0xAB, 0, 28));
        assert_eq!(
            decode_schema::<String>(&v2, &codec, MAX, 0xAB).unwrap(),
            "old"
        );
        // As version 1 wrote it: no fingerprint either.
        let mut v1 = v3[..20].to_vec();
        v1[2] = 1;
        v1.extend_from_slice(&v3[HEADER_LEN..]);
        let h = header(&v1, &codec, MAX).unwrap();
        assert_eq!((h.fingerprint, h.len), (0, 20));
        assert_eq!(
            decode_schema::<String>(&v1, &codec, MAX, 0xCD).unwrap(),
            "old"
        );
        // A header cut short is no envelope.
        assert!(matches!(
            decode::<String>(&v3[..30], &codec, MAX),
            Err(DecodeError::NoEnvelope)
        ));
        assert!(matches!(
            decode::<String>(&v2[..24], &codec, MAX),
            Err(DecodeError::NoEnvelope)
        ));
    }

    #[test]
    fn round_trip_keeps_value_and_timestamps() {
        let codec = CodecImpl::Json;
        let bytes = encode(&codec, &vec![1u32, 2, 3], Duration::from_secs(60), MAX).unwrap();
        assert_eq!(&bytes[..4], b"CR\x03j");
        assert_eq!(&bytes[HEADER_LEN..], b"[1,2,3]");
        let h = header(&bytes, &codec, MAX).unwrap();
        assert_eq!(h.fresh_until_ms - h.written_at_ms, 60_000);
        assert!(
            h.written_at_ms > 1_600_000_000_000,
            "written-at is wall-clock ms"
        );
        let v: Vec<u32> = decode(&bytes, &codec, MAX).unwrap();
        assert_eq!(v, [1, 2, 3]);
    }

    #[test]
    fn placeholders_are_unique_and_never_a_value() {
        let codec = CodecImpl::Json;
        let (a, b) = (placeholder(), placeholder());
        assert_ne!(a, b, "each placeholder has its own token");
        assert!(is_placeholder(&a) && is_placeholder(&b));
        assert!(!is_gave_up(&a));
        let given_up = gave_up(&a);
        assert!(is_placeholder(&given_up) && is_gave_up(&given_up));
        assert!(given_up.starts_with(GAVE_UP_PREFIX));
        assert!(matches!(
            decode::<u32>(&a, &codec, MAX),
            Err(DecodeError::Placeholder)
        ));
        let value = encode(&codec, &7u32, Duration::from_secs(1), MAX).unwrap();
        assert!(!is_placeholder(&value));
        // Shorter than any header: a reader that knows no placeholders
        // takes it for foreign bytes.
        const { assert!(PLACEHOLDER_LEN < V1_HEADER_LEN) };
    }

    #[test]
    fn foreign_bytes_are_rejected() {
        let codec = CodecImpl::Json;
        assert!(matches!(
            decode::<u32>(b"42", &codec, MAX),
            Err(DecodeError::NoEnvelope)
        ));
        assert!(matches!(
            decode::<u32>(b"", &codec, MAX),
            Err(DecodeError::NoEnvelope)
        ));
        let mut bytes = encode(&codec, &7u32, Duration::from_secs(1), MAX).unwrap();
        bytes[2] = 9;
        assert!(matches!(
            decode::<u32>(&bytes, &codec, MAX),
            Err(DecodeError::Version(9))
        ));
        bytes[2] = 3;
        bytes[3] = b'x';
        assert!(matches!(
            decode::<u32>(&bytes, &codec, MAX),
            Err(DecodeError::OtherCodec { .. })
        ));
    }

    #[test]
    fn changed_shape_and_truncation_are_errors() {
        let codec = CodecImpl::Json;
        let bytes = encode(&codec, &"text", Duration::from_secs(1), MAX).unwrap();
        assert!(matches!(
            decode::<u64>(&bytes, &codec, MAX),
            Err(DecodeError::Codec(_))
        ));
        let bytes = encode(&codec, &vec![1u8; 10], Duration::from_secs(1), MAX).unwrap();
        assert!(decode::<Vec<u8>>(&bytes[..bytes.len() - 1], &codec, MAX).is_err());
    }

    #[test]
    fn size_limit_applies_both_ways() {
        let codec = CodecImpl::Json;
        let big = "x".repeat(100);
        let err = encode(&codec, &big, Duration::from_secs(1), 50).unwrap_err();
        assert!(err.contains("maximum value size of 50"), "{err}");
        let bytes = encode(&codec, &big, Duration::from_secs(1), MAX).unwrap();
        assert!(matches!(
            decode::<String>(&bytes, &codec, 50),
            Err(DecodeError::TooLarge { max: 50, .. })
        ));
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn bincode_round_trip_and_json_value_is_a_mismatch() {
        let bin = CodecImpl::Bincode;
        let bytes = encode(&bin, &(1u8, "two".to_string()), Duration::from_secs(1), MAX).unwrap();
        let v: (u8, String) = decode(&bytes, &bin, MAX).unwrap();
        assert_eq!(v, (1, "two".to_string()));
        assert!(matches!(
            decode::<(u8, String)>(&bytes, &CodecImpl::Json, MAX),
            Err(DecodeError::OtherCodec { found: b'b', .. })
        ));
        // A corrupt string length in a tiny value must fail before bincode
        // allocates for it (bincode allocates strings up front).
        let mut evil = bytes[..HEADER_LEN].to_vec();
        evil.extend_from_slice(&[1, 0xFD]); // (1u8, string of length ...)
        evil.extend_from_slice(&(200u64 << 20).to_le_bytes()); // 200 MiB
        evil.extend_from_slice(b"abc");
        let err = decode::<(u8, String)>(&evil, &bin, MAX).unwrap_err();
        assert!(err.to_string().contains("LimitExceeded"), "{err}");
        // A corrupt length prefix must fail without a huge allocation.
        let mut evil = bytes[..HEADER_LEN].to_vec();
        evil.extend_from_slice(&[0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
        assert!(decode::<Vec<u64>>(&evil, &bin, MAX).is_err());
    }
}

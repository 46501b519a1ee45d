//! The envelope in front of every stored value.
//!
//! ```text
//! offset  size  field
//! 0       2     magic "CR"
//! 2       1     envelope format version (1)
//! 3       1     codec id ('j' JSON, 'b' bincode, 128..=255 user codecs)
//! 4       8     written-at, milliseconds since the Unix epoch, big-endian
//! 12      8     fresh-until, milliseconds since the Unix epoch, big-endian
//! 20      ..    the codec's bytes
//! ```
//!
//! The header is 20 bytes; with JSON the rest reads as plain JSON in
//! `redis-cli GET`. The timestamps are written now so that later features
//! (stale-while-revalidate, early refresh) can read values written today.

use crate::backend::millis;
use crate::codec::CodecImpl;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC: [u8; 2] = *b"CR";
const VERSION: u8 = 1;
pub(crate) const HEADER_LEN: usize = 20;

/// Why stored bytes were not accepted as a value (each one is a miss).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("value of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("not written by this library (no envelope)")]
    NoEnvelope,
    #[error("envelope format version {0} is not supported")]
    Version(u8),
    #[error("written with codec id {found}, this cache uses {expected}")]
    OtherCodec { found: u8, expected: u8 },
    #[error("codec: {0}")]
    Codec(#[from] crate::codec::CodecError),
}

/// The header fields of a stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) codec: u8,
    pub(crate) written_at_ms: u64,
    pub(crate) fresh_until_ms: u64,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// Encodes `value` into a new buffer: header, then the codec's bytes.
pub(crate) fn encode<T: Serialize + ?Sized>(
    codec: &CodecImpl,
    value: &T,
    ttl: Duration,
    max_len: usize,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(HEADER_LEN + 128);
    let written = now_ms();
    let ttl_ms = millis(ttl);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(codec.id());
    out.extend_from_slice(&written.to_be_bytes());
    out.extend_from_slice(&written.saturating_add(ttl_ms).to_be_bytes());
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
    if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
        return Err(DecodeError::NoEnvelope);
    }
    if bytes[2] != VERSION {
        return Err(DecodeError::Version(bytes[2]));
    }
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
    })
}

/// Decodes a stored value: envelope checks, then the codec.
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    codec: &CodecImpl,
    max_len: usize,
) -> Result<T, DecodeError> {
    header(bytes, codec, max_len)?;
    Ok(codec.decode(&bytes[HEADER_LEN..])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn round_trip_keeps_value_and_timestamps() {
        let codec = CodecImpl::Json;
        let bytes = encode(&codec, &vec![1u32, 2, 3], Duration::from_secs(60), MAX).unwrap();
        assert_eq!(&bytes[..4], b"CR\x01j");
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
        bytes[2] = 1;
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

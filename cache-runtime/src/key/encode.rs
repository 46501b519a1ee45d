//! Canonical, versioned encoding of cache-key arguments.
//!
//! A `#[cached]` function without a key template gets the key
//! `{prefix}:{name}:{hash}`, where `hash` is the lowercase hex of [`digest`]
//! applied to the function's arguments. [`digest`] drives the value's
//! `serde::Serialize` impl into a serializer that feeds a SHA-256 hasher
//! directly: nothing is buffered, and nothing is allocated except the entry
//! digests of maps.
//!
//! # Stability
//!
//! The format below is a public contract. The same argument values must give
//! the same digest in every process, on every machine and in every later
//! release, because keys written by one deployment are read by the next. The
//! golden vectors in this module's tests pin it. Any change to the bytes
//! produced for any value is a breaking change that needs a new
//! [`KEY_ENCODING_VERSION`].
//!
//! # Format
//!
//! The digest is SHA-256 over the ASCII bytes `cache-runtime:key:v`, then the
//! single byte [`KEY_ENCODING_VERSION`], then the encoding of the value.
//!
//! The encoding of a value is a one-byte type tag followed by a payload.
//! Integers are little-endian at their fixed width. `len` is a `u64`,
//! little-endian. A `name` (a field or variant name) is `len` followed by its
//! UTF-8 bytes, without a tag. The tag `0x00` never starts a value; it is only
//! used as an end marker.
//!
//! ```text
//! serde data model      tag   payload
//! --------------------  ----  -----------------------------------------------
//! bool                  0x01  one byte: 0x00 (false) or 0x01 (true)
//! i8                    0x02  1 byte
//! i16                   0x03  2 bytes LE
//! i32                   0x04  4 bytes LE
//! i64 (and isize)       0x05  8 bytes LE
//! i128                  0x06  16 bytes LE
//! u8                    0x07  1 byte
//! u16                   0x08  2 bytes LE
//! u32                   0x09  4 bytes LE
//! u64 (and usize)       0x0A  8 bytes LE
//! u128                  0x0B  16 bytes LE
//! f32                   0x0C  bits as u32 LE; -0.0 -> 0.0, any NaN -> 0x7fc00000
//! f64                   0x0D  bits as u64 LE; -0.0 -> 0.0, any NaN -> 0x7ff8000000000000
//! char                  0x0E  scalar value as u32 LE
//! str                   0x0F  len, UTF-8 bytes
//! bytes                 0x10  len, bytes
//! none                  0x11  (nothing)
//! some                  0x12  value
//! unit, unit struct     0x13  (nothing; the struct name is not encoded)
//! unit variant          0x14  name(variant)
//! newtype struct        ----  transparent: exactly the inner value's encoding
//! newtype variant       0x15  name(variant), value
//! seq                   0x16  each element, 0x00, element count as u64 LE
//! tuple, tuple struct   0x17  len, each element
//! tuple variant         0x18  name(variant), len, each element
//! map                   0x19  entry count as u64 LE, entry digests ascending
//! struct                0x1A  for each serialized field: 0x1C, name, value;
//!                             then 0x00
//! struct variant        0x1B  name(variant), then fields as for struct,
//!                             then 0x00
//! ```
//!
//! Notes on the less obvious rows:
//!
//! - Enum variants are identified by their **name**, never their index, so
//!   reordering the variants of an enum keeps its keys. The enum's own name is
//!   not encoded either.
//! - Newtype structs are transparent, so wrapping an id in a newtype keeps its
//!   keys. Struct and tuple-struct names are not encoded, so renaming a type
//!   keeps its keys.
//! - A seq is encoded the same way whether or not serde knows its length up
//!   front.
//! - The digest of a map entry is SHA-256 over the encoding of the key followed
//!   by the encoding of the value, with **no** domain prefix. The map's entry
//!   digests are sorted ascending before they are written, so the iteration
//!   order of a `HashMap` is irrelevant, and a `HashMap` and a `BTreeMap` with
//!   equal contents give the same digest. Maps nested inside keys or values are
//!   encoded the same way.
//! - A struct field skipped by its `Serialize` impl contributes nothing.
//! - The serializer reports `is_human_readable() == false`, so types with
//!   both a textual and a compact form (IP addresses, for instance) use the
//!   compact one.
//!
//! For example, the one-element tuple `(42u64,)` is digested as SHA-256 of:
//!
//! ```text
//! 63 61 63 68 65 2d 72 75 6e 74 69 6d 65 3a   "cache-runtime:key:v"
//! 6b 65 79 3a 76
//! 01                                          KEY_ENCODING_VERSION
//! 17                                          tuple
//! 01 00 00 00 00 00 00 00                     len = 1
//! 0a                                          u64
//! 2a 00 00 00 00 00 00 00                     42
//! ```

use std::fmt;

use serde::ser::{
    self, Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant,
    SerializeTuple, SerializeTupleStruct, SerializeTupleVariant, Serializer,
};
use sha2::{Digest as _, Sha256};

/// Version of the canonical key encoding. Fed into every digest first; bump
/// only with a new format.
///
/// The digest starts with the bytes `cache-runtime:key:v` followed by this
/// value as a single byte, so keys produced by different versions of the
/// format never collide.
pub const KEY_ENCODING_VERSION: u8 = 1;

/// Domain prefix hashed before the version byte.
const DOMAIN: &[u8] = b"cache-runtime:key:v";

/// Largest capacity pre-allocated for a map's entry digests on the strength of
/// the length hint alone.
const MAX_PREALLOCATED_ENTRIES: usize = 1024;

/// One-byte type tags of format version 1. Never change an existing value.
mod tag {
    pub const END: u8 = 0x00;
    pub const BOOL: u8 = 0x01;
    pub const I8: u8 = 0x02;
    pub const I16: u8 = 0x03;
    pub const I32: u8 = 0x04;
    pub const I64: u8 = 0x05;
    pub const I128: u8 = 0x06;
    pub const U8: u8 = 0x07;
    pub const U16: u8 = 0x08;
    pub const U32: u8 = 0x09;
    pub const U64: u8 = 0x0A;
    pub const U128: u8 = 0x0B;
    pub const F32: u8 = 0x0C;
    pub const F64: u8 = 0x0D;
    pub const CHAR: u8 = 0x0E;
    pub const STR: u8 = 0x0F;
    pub const BYTES: u8 = 0x10;
    pub const NONE: u8 = 0x11;
    pub const SOME: u8 = 0x12;
    pub const UNIT: u8 = 0x13;
    pub const UNIT_VARIANT: u8 = 0x14;
    pub const NEWTYPE_VARIANT: u8 = 0x15;
    pub const SEQ: u8 = 0x16;
    pub const TUPLE: u8 = 0x17;
    pub const TUPLE_VARIANT: u8 = 0x18;
    pub const MAP: u8 = 0x19;
    pub const STRUCT: u8 = 0x1A;
    pub const STRUCT_VARIANT: u8 = 0x1B;
    pub const FIELD: u8 = 0x1C;
}

/// Error when the arguments of a cached function cannot be encoded into a
/// key, because a value's `Serialize` impl failed.
///
/// This happens when a custom `Serialize` impl returns an error of its own, or
/// when it misuses the serializer (for instance a map value serialized without
/// a key). The error carries a message only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEncodeError {
    message: String,
}

impl KeyEncodeError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message describing why the value could not be encoded.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for KeyEncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for KeyEncodeError {}

impl ser::Error for KeyEncodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::new(msg.to_string())
    }
}

/// SHA-256 over the canonical encoding of `value`.
///
/// The hashed stream is the domain prefix `cache-runtime:key:v`, the byte
/// [`KEY_ENCODING_VERSION`], then the encoding of `value` as described in the
/// module documentation. The result is stable across processes, machines and
/// releases for equal values.
///
/// # Errors
///
/// Returns a [`KeyEncodeError`] when the `Serialize` impl of `value` (or of
/// anything inside it) fails.
pub fn digest<T: Serialize + ?Sized>(value: &T) -> Result<[u8; 32], KeyEncodeError> {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update([KEY_ENCODING_VERSION]);
    value.serialize(&mut Encoder::new(&mut hasher))?;
    Ok(hasher.finalize().into())
}

/// Appends the lowercase hex of `digest` (64 chars) to `out` without
/// allocating beyond `out`'s growth.
///
/// Used to turn the output of [`digest`] into the `{hash}` part of a key.
pub fn push_hex(digest: &[u8; 32], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(digest.len() * 2);
    for &byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0F)]));
    }
}

/// Maps `-0.0` to `0.0` and every NaN to the canonical quiet NaN.
fn canonical_f32_bits(v: f32) -> u32 {
    if v.is_nan() {
        0x7FC0_0000
    } else if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

/// Maps `-0.0` to `0.0` and every NaN to the canonical quiet NaN.
fn canonical_f64_bits(v: f64) -> u64 {
    if v.is_nan() {
        0x7FF8_0000_0000_0000
    } else if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

/// The serializer: writes the canonical encoding of a value into `hasher`.
///
/// Small writes (tags, integers) collect in a local buffer that goes to the
/// hasher in one `update` when full and when the encoder is dropped, so a
/// `Vec<u8>` argument costs a copy per element, not a hasher call. The hashed
/// byte stream is the same either way.
struct Encoder<'h> {
    hasher: &'h mut Sha256,
    buf: [u8; BUF_LEN],
    len: usize,
}

const BUF_LEN: usize = 128;

impl<'h> Encoder<'h> {
    fn new(hasher: &'h mut Sha256) -> Self {
        Encoder {
            hasher,
            buf: [0; BUF_LEN],
            len: 0,
        }
    }

    fn flush(&mut self) {
        if self.len > 0 {
            self.hasher.update(&self.buf[..self.len]);
            self.len = 0;
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > BUF_LEN {
            self.flush();
            if bytes.len() > BUF_LEN {
                self.hasher.update(bytes);
                return;
            }
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn write_tag(&mut self, tag: u8) {
        self.write(&[tag]);
    }

    fn write_len(&mut self, len: usize) {
        // `usize` is at most 64 bits on every supported target.
        self.write_u64(len as u64);
    }

    fn write_u64(&mut self, v: u64) {
        self.write(&v.to_le_bytes());
    }

    fn write_name(&mut self, name: &str) {
        self.write_len(name.len());
        self.write(name.as_bytes());
    }

    fn write_tagged(&mut self, tag: u8, payload: &[u8]) {
        self.write_tag(tag);
        self.write(payload);
    }
}

impl Drop for Encoder<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl<'a, 'h> Serializer for &'a mut Encoder<'h> {
    type Ok = ();
    type Error = KeyEncodeError;
    type SerializeSeq = SeqEncoder<'a, 'h>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = MapEncoder<'a, 'h>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Result<(), KeyEncodeError> {
        self.write_tagged(tag::BOOL, &[u8::from(v)]);
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), KeyEncodeError> {
        self.write_tagged(tag::I8, &v.to_le_bytes());
        Ok(())
    }

    fn serialize_i16(self, v: i16) -> Result<(), KeyEncodeError> {
        self.write_tagged(tag::I16, &v.to_le_bytes());
        Ok(())
    }

    fn serialize_i32(self, v: i32) -> Result<(), KeyEncodeError> {
        self.write_tagged(tag::I32, &v.to_le_bytes());
        Ok(())
    }

    fn serialize_i64(self, v: i64) -> Result<(), KeyEncodeError> {
        self.write_tagged(tag::I64, &v.to_le_bytes());
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<(), KeyEncodeError> {
        self.write_tagged(tag::I128, &v.to_le_bytes());
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result<(), KeyEncodeError> {
        self.write_tagged(tag::U8, &[v]);
        Ok(())
    }

    fn serialize_u16(self, v: u16) -> Result<(), KeyEncodeError> {
        self.write_tagged(tag::U16, &v.to_le_bytes());
        Ok(())
    }

    fn serialize_u32(self, v: u32) -> Result<(), KeyEncodeError> {
        self.write_tagged(tag::U32, &v.to_le_bytes());
        Ok(())
    }

    fn serialize_u64(self, v: u64) -> Result<(), KeyEncodeError> {
        self.write_tagged(tag::U64, &v.to_le_bytes());
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), KeyEncodeError> {
        self.write_tagged(tag::U128, &v.to_le_bytes());
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), KeyEncodeError> {
        self.write_tagged(tag::F32, &canonical_f32_bits(v).to_le_bytes());
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), KeyEncodeError> {
        self.write_tagged(tag::F64, &canonical_f64_bits(v).to_le_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), KeyEncodeError> {
        self.write_tagged(tag::CHAR, &u32::from(v).to_le_bytes());
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), KeyEncodeError> {
        self.write_tag(tag::STR);
        self.write_len(v.len());
        self.write(v.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), KeyEncodeError> {
        self.write_tag(tag::BYTES);
        self.write_len(v.len());
        self.write(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), KeyEncodeError> {
        self.write_tag(tag::NONE);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), KeyEncodeError> {
        self.write_tag(tag::SOME);
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), KeyEncodeError> {
        self.write_tag(tag::UNIT);
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), KeyEncodeError> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _variant_index: u32,
        variant: &'static str,
    ) -> Result<(), KeyEncodeError> {
        self.write_tag(tag::UNIT_VARIANT);
        self.write_name(variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), KeyEncodeError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _variant_index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), KeyEncodeError> {
        self.write_tag(tag::NEWTYPE_VARIANT);
        self.write_name(variant);
        value.serialize(self)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<SeqEncoder<'a, 'h>, KeyEncodeError> {
        self.write_tag(tag::SEQ);
        Ok(SeqEncoder {
            encoder: self,
            count: 0,
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Self, KeyEncodeError> {
        self.write_tag(tag::TUPLE);
        self.write_len(len);
        Ok(self)
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Self, KeyEncodeError> {
        self.serialize_tuple(len)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _variant_index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, KeyEncodeError> {
        self.write_tag(tag::TUPLE_VARIANT);
        self.write_name(variant);
        self.write_len(len);
        Ok(self)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<MapEncoder<'a, 'h>, KeyEncodeError> {
        let capacity = len.map_or(0, |len| len.min(MAX_PREALLOCATED_ENTRIES));
        Ok(MapEncoder {
            encoder: self,
            entries: Vec::with_capacity(capacity),
            pending: None,
        })
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, KeyEncodeError> {
        self.write_tag(tag::STRUCT);
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _variant_index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, KeyEncodeError> {
        self.write_tag(tag::STRUCT_VARIANT);
        self.write_name(variant);
        Ok(self)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

impl SerializeTuple for &mut Encoder<'_> {
    type Ok = ();
    type Error = KeyEncodeError;

    fn serialize_element<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), KeyEncodeError> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), KeyEncodeError> {
        Ok(())
    }
}

impl SerializeTupleStruct for &mut Encoder<'_> {
    type Ok = ();
    type Error = KeyEncodeError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyEncodeError> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), KeyEncodeError> {
        Ok(())
    }
}

impl SerializeTupleVariant for &mut Encoder<'_> {
    type Ok = ();
    type Error = KeyEncodeError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyEncodeError> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), KeyEncodeError> {
        Ok(())
    }
}

impl SerializeStruct for &mut Encoder<'_> {
    type Ok = ();
    type Error = KeyEncodeError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), KeyEncodeError> {
        // The field marker keeps the end marker unambiguous even for a name
        // whose length's low byte is zero.
        self.write_tag(tag::FIELD);
        self.write_name(key);
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), KeyEncodeError> {
        self.write_tag(tag::END);
        Ok(())
    }
}

impl SerializeStructVariant for &mut Encoder<'_> {
    type Ok = ();
    type Error = KeyEncodeError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), KeyEncodeError> {
        // The field marker keeps the end marker unambiguous even for a name
        // whose length's low byte is zero.
        self.write_tag(tag::FIELD);
        self.write_name(key);
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), KeyEncodeError> {
        self.write_tag(tag::END);
        Ok(())
    }
}

/// A seq in progress: counts its elements so the count can follow the end
/// marker, which makes the encoding independent of the length hint.
struct SeqEncoder<'a, 'h> {
    encoder: &'a mut Encoder<'h>,
    count: u64,
}

impl SerializeSeq for SeqEncoder<'_, '_> {
    type Ok = ();
    type Error = KeyEncodeError;

    fn serialize_element<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), KeyEncodeError> {
        value.serialize(&mut *self.encoder)?;
        self.count += 1;
        Ok(())
    }

    fn end(self) -> Result<(), KeyEncodeError> {
        self.encoder.write_tag(tag::END);
        self.encoder.write_u64(self.count);
        Ok(())
    }
}

/// A map in progress: each entry is hashed on its own, and the sorted entry
/// digests are written to the parent when the map ends.
struct MapEncoder<'a, 'h> {
    encoder: &'a mut Encoder<'h>,
    entries: Vec<[u8; 32]>,
    /// Hasher of an entry whose key has been serialized but not its value.
    pending: Option<Sha256>,
}

impl MapEncoder<'_, '_> {
    fn ensure_no_pending_key(&self) -> Result<(), KeyEncodeError> {
        if self.pending.is_some() {
            Err(KeyEncodeError::new(
                "map key serialized without a value for the previous key",
            ))
        } else {
            Ok(())
        }
    }
}

impl SerializeMap for MapEncoder<'_, '_> {
    type Ok = ();
    type Error = KeyEncodeError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), KeyEncodeError> {
        self.ensure_no_pending_key()?;
        let mut entry = Sha256::new();
        key.serialize(&mut Encoder::new(&mut entry))?;
        self.pending = Some(entry);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyEncodeError> {
        let mut entry = self
            .pending
            .take()
            .ok_or_else(|| KeyEncodeError::new("map value serialized without a key"))?;
        value.serialize(&mut Encoder::new(&mut entry))?;
        self.entries.push(entry.finalize().into());
        Ok(())
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), KeyEncodeError> {
        self.ensure_no_pending_key()?;
        let mut entry = Sha256::new();
        {
            let mut encoder = Encoder::new(&mut entry);
            key.serialize(&mut encoder)?;
            value.serialize(&mut encoder)?;
        } // dropping the encoder flushes it into `entry`
        self.entries.push(entry.finalize().into());
        Ok(())
    }

    fn end(mut self) -> Result<(), KeyEncodeError> {
        if self.pending.is_some() {
            return Err(KeyEncodeError::new("map ended with a key but no value"));
        }
        self.entries.sort_unstable();
        self.encoder.write_tag(tag::MAP);
        self.encoder.write_len(self.entries.len());
        for entry in &self.entries {
            self.encoder.write(entry);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::hash::RandomState;

    use serde::ser::{Error as _, SerializeMap as _};
    use serde::{Serialize, Serializer};
    use sha2::{Digest as _, Sha256};

    use super::{digest, push_hex, KeyEncodeError, KEY_ENCODING_VERSION};

    // ---- helper types -------------------------------------------------------

    /// Serializes as serde `bytes` (a stand-in for `serde_bytes`).
    struct Bytes<'a>(&'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    #[derive(Serialize)]
    struct AB {
        a: u8,
        b: String,
    }

    #[derive(Serialize)]
    enum Shape {
        Empty,
        Circle(f64),
        Rect(u32, u32),
        Polygon { sides: u8, label: String },
    }

    /// Same variant names as `Shape`, different enum, different order.
    #[derive(Serialize)]
    enum Reordered {
        Polygon { sides: u8, label: String },
        Rect(u32, u32),
        Circle(f64),
        Empty,
        Full,
    }

    #[derive(Serialize)]
    struct Marker;

    #[derive(Serialize)]
    struct Pair(i32, i32);

    #[derive(Serialize)]
    struct Id(u64);

    #[derive(Serialize)]
    struct Request {
        user: Id,
        tags: Vec<&'static str>,
        filters: BTreeMap<String, Vec<i64>>,
        page: Option<u32>,
        #[serde(skip)]
        _trace: u64,
    }

    #[derive(Serialize)]
    struct OnlyA {
        a: u8,
    }

    #[derive(Serialize)]
    struct MaybeB {
        a: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<u8>,
    }

    #[derive(Serialize)]
    struct Outer<M> {
        name: &'static str,
        items: Vec<M>,
    }

    /// Serializes the even numbers of a slice through an iterator whose length
    /// serde does not know up front.
    struct Evens<'a>(&'a [u32]);

    impl Serialize for Evens<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.0.iter().filter(|n| *n % 2 == 0))
        }
    }

    /// A map serialized with separate `serialize_key` / `serialize_value` calls.
    struct SplitMap<'a>(&'a [(u8, &'a str)]);

    impl Serialize for SplitMap<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(None)?;
            for (key, value) in self.0 {
                map.serialize_key(key)?;
                map.serialize_value(value)?;
            }
            map.end()
        }
    }

    struct Failing;

    impl Serialize for Failing {
        fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
            Err(S::Error::custom("boom"))
        }
    }

    /// Misuses the map serializer in one of several ways.
    enum BadMap {
        ValueWithoutKey,
        KeyWithoutValue,
        TwoKeys,
    }

    impl Serialize for BadMap {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(1))?;
            match self {
                Self::ValueWithoutKey => map.serialize_value(&1u8)?,
                Self::KeyWithoutValue => map.serialize_key(&1u8)?,
                Self::TwoKeys => {
                    map.serialize_key(&1u8)?;
                    map.serialize_key(&2u8)?;
                }
            }
            map.end()
        }
    }

    fn d<T: Serialize + ?Sized>(value: &T) -> [u8; 32] {
        digest(value).expect("value encodes")
    }

    fn hex<T: Serialize + ?Sized>(value: &T) -> String {
        let mut out = String::new();
        push_hex(&d(value), &mut out);
        out
    }

    // ---- 1. hand-built vectors ---------------------------------------------

    /// SHA-256 of the domain prefix, the version byte and `parts`, assembled
    /// by hand from the format table.
    fn expected(parts: &[&[u8]]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(b"cache-runtime:key:v");
        hasher.update([0x01]);
        for part in parts {
            hasher.update(part);
        }
        hasher.finalize().into()
    }

    fn len(n: u64) -> [u8; 8] {
        n.to_le_bytes()
    }

    fn sha(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    #[test]
    fn version_is_one() {
        assert_eq!(KEY_ENCODING_VERSION, 1);
    }

    #[test]
    fn hand_built_scalars() {
        // (42u64,): tuple, len 1, u64 42.
        assert_eq!(
            d(&(42u64,)),
            expected(&[&[0x17], &len(1), &[0x0A], &[42, 0, 0, 0, 0, 0, 0, 0]])
        );
        // "héllo": str, len 6 (é is two bytes), UTF-8.
        assert_eq!(d("héllo"), expected(&[&[0x0F], &len(6), b"h\xC3\xA9llo"]));
        // Some(-1i32): some, i32, 0xFFFFFFFF.
        assert_eq!(
            d(&Some(-1i32)),
            expected(&[&[0x12, 0x04, 0xFF, 0xFF, 0xFF, 0xFF]])
        );
        assert_eq!(d(&None::<u8>), expected(&[&[0x11]]));
        assert_eq!(d(&()), expected(&[&[0x13]]));
        assert_eq!(d(&Marker), expected(&[&[0x13]]));
        assert_eq!(d(&'é'), expected(&[&[0x0E, 0xE9, 0x00, 0x00, 0x00]]));
        assert_eq!(d(&Bytes(&[1, 2])), expected(&[&[0x10], &len(2), &[1, 2]]));
        assert_eq!(d(&-0.0f64), expected(&[&[0x0D], &[0; 8]]));
        assert_eq!(
            d(&f32::NAN),
            expected(&[&[0x0C], &[0x00, 0x00, 0xC0, 0x7F]])
        );
        assert_eq!(d(&u128::MAX), expected(&[&[0x0B], &[0xFF; 16]]));
        assert_eq!(d(&7usize), expected(&[&[0x0A], &[7, 0, 0, 0, 0, 0, 0, 0]]));
    }

    #[test]
    fn hand_built_compounds() {
        // Struct { a: 7, b: "xy" }: struct, field "a", u8 7, field "b", str "xy", end.
        let ab = AB {
            a: 7,
            b: "xy".to_owned(),
        };
        assert_eq!(
            d(&ab),
            expected(&[
                &[0x1A, 0x1C],
                &len(1),
                b"a",
                &[0x07, 7, 0x1C],
                &len(1),
                b"b",
                &[0x0F],
                &len(2),
                b"xy",
                &[0x00],
            ])
        );
        // vec![1u16, 2]: seq, elements, end marker, count.
        assert_eq!(
            d(&vec![1u16, 2]),
            expected(&[&[0x16, 0x08, 1, 0, 0x08, 2, 0, 0x00], &len(2)])
        );
        // Unit, newtype, tuple and struct variants, by name.
        assert_eq!(d(&Shape::Empty), expected(&[&[0x14], &len(5), b"Empty"]));
        assert_eq!(
            d(&Shape::Circle(2.5)),
            expected(&[
                &[0x15],
                &len(6),
                b"Circle",
                &[0x0D, 0, 0, 0, 0, 0, 0, 0x04, 0x40],
            ])
        );
        assert_eq!(
            d(&Shape::Rect(3, 4)),
            expected(&[
                &[0x18],
                &len(4),
                b"Rect",
                &len(2),
                &[0x09, 3, 0, 0, 0, 0x09, 4, 0, 0, 0],
            ])
        );
        let polygon = Shape::Polygon {
            sides: 6,
            label: "hex".to_owned(),
        };
        assert_eq!(
            d(&polygon),
            expected(&[
                &[0x1B],
                &len(7),
                b"Polygon",
                &[0x1C],
                &len(5),
                b"sides",
                &[0x07, 6, 0x1C],
                &len(5),
                b"label",
                &[0x0F],
                &len(3),
                b"hex",
                &[0x00],
            ])
        );
        // Tuple struct: same as a tuple, no name.
        assert_eq!(
            d(&Pair(1, -1)),
            expected(&[
                &[0x17],
                &len(2),
                &[0x04, 1, 0, 0, 0, 0x04, 0xFF, 0xFF, 0xFF, 0xFF],
            ])
        );
        // Map {1u8: true, 2u8: false}: count, sorted entry digests (no prefix).
        let mut entries = [sha(&[0x07, 1, 0x01, 1]), sha(&[0x07, 2, 0x01, 0])];
        entries.sort_unstable();
        let map = BTreeMap::from([(1u8, true), (2u8, false)]);
        assert_eq!(
            d(&map),
            expected(&[&[0x19], &len(2), &entries[0], &entries[1]])
        );
    }

    // ---- 2. golden vectors --------------------------------------------------

    /// Pinned digests of format version 1.
    ///
    /// THESE VALUES MUST NEVER CHANGE. Keys written by earlier releases are
    /// read by later ones; a different digest for any of these values is a
    /// breaking change to the key format and needs a new
    /// `KEY_ENCODING_VERSION` (and new vectors for it).
    #[test]
    fn golden_vectors() {
        let request = Request {
            user: Id(42),
            tags: vec!["a", "b"],
            filters: BTreeMap::from([
                ("age".to_owned(), vec![18, 65]),
                ("score".to_owned(), vec![-3]),
            ]),
            page: Some(2),
            _trace: 99,
        };
        let nested: BTreeMap<&str, BTreeMap<u8, Vec<bool>>> = BTreeMap::from([
            ("x", BTreeMap::from([(1, vec![true]), (2, vec![])])),
            ("y", BTreeMap::new()),
        ]);
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "true",
                hex(&true),
                "deedb3b78abc51b85a9df46d0bb038b261b5c94ad7b0764f2361b573df900b53",
            ),
            (
                "false",
                hex(&false),
                "cc12e4517744884489814e55f940561ae0330617af2a43f933ffb08c8c858758",
            ),
            (
                "i8",
                hex(&i8::MIN),
                "2498fe8825c7c34084cdc554c88d4ee7fa8076894dfe35c4caca2d0ac22af683",
            ),
            (
                "i16",
                hex(&-12345i16),
                "42eacf6e091fc720443385b9521079d9b5941e691573c6735568e7c6640677c1",
            ),
            (
                "i32",
                hex(&-1i32),
                "a0e130df4e0e5572b22892dc9ee2f1d2d6aa277762f24687fde70872212b1571",
            ),
            (
                "i64",
                hex(&i64::MIN),
                "010235bacdf35c9bb16131b098ddbda32a912fc79752f0993003fce4cd7ce816",
            ),
            (
                "i128",
                hex(&i128::MIN),
                "bdb21f919456a36cc9238fd2df0ac7b84c40a7b98c5096e7476825de474d4f58",
            ),
            (
                "u8",
                hex(&u8::MAX),
                "4af5339fa23152373252ab063e5584ebbb9ac303e3d201dc5b6dc4d599604fa2",
            ),
            (
                "u16",
                hex(&0xBEEFu16),
                "30d3106061a24ea2119f5e82eec639584f514548fb89ec48af69805c23e1a768",
            ),
            (
                "u32",
                hex(&0xDEAD_BEEFu32),
                "a4db18db35f3f3172e0464583cfc70cafe364023042a977f708aa5b6ef89a1fe",
            ),
            (
                "u64",
                hex(&u64::MAX),
                "b6a1e93a9fee7340b475fcfadb17f52eb066f6980b0d0785574c41a1ca20a60e",
            ),
            (
                "u128",
                hex(&0x0123_4567_89AB_CDEF_FEDC_BA98_7654_3210u128),
                "d54db840efc14414abb8e481eec5dc9a63f7cae6579d9795cba877102a0fea4d",
            ),
            (
                "usize",
                hex(&12345usize),
                "57a8a693f6eef8b4d51a21c33cf1e5c31c4658bd60dfabcc5644845bb50b094d",
            ),
            (
                "isize",
                hex(&-7isize),
                "f49b2481ff14ebba32228acc750e9b772aef31dc6fd943e70353e2d4205c8dc0",
            ),
            (
                "f32",
                hex(&1.5f32),
                "a245f9ad24815d26d85e1c8f825f6a0738e9f4e10b408a32621c48e07425816e",
            ),
            (
                "f32 -0.0",
                hex(&-0.0f32),
                "1e37f397a9c54a259d2faa0521810e73cd69385490efe6457554d0eb15c08e6c",
            ),
            (
                "f32 NaN",
                hex(&f32::NAN),
                "40daed83f3a5f3663431358998336ade649108aec86664a27176947ea7ae54e0",
            ),
            (
                "f64",
                hex(&std::f64::consts::PI),
                "f9ef6b7f09501b1ef163489d7dd5818760dcb2f2c155a4ecb2b063d62f31aafe",
            ),
            (
                "f64 0.0",
                hex(&0.0f64),
                "82b6b2084b4fbb618d8fa5759387097fbf9762e6f60346eb88b633ea9656714c",
            ),
            (
                "f64 NaN",
                hex(&f64::NAN),
                "014b38518b56e406139d2272e77b6fc3b549c805866af71970837309a15f6315",
            ),
            (
                "char",
                hex(&'🦀'),
                "27916735b9075853d07fa90175129c6e560d281e7aac11a016d69f7c6db1e43d",
            ),
            (
                "empty str",
                hex(""),
                "b5795685cf873a5d435a9fd70597e9c369a5fad33f299b540cff7e105f631765",
            ),
            (
                "str",
                hex("héllo, wörld"),
                "65d503fe167e605133cdc871a7024045fca2384c8dc437ee37ac0515f5e2820b",
            ),
            (
                "bytes",
                hex(&Bytes(&[0, 1, 2, 255])),
                "3554f02a73c5cbd5999a39f3adf9f2c7d466c5b4714921d95d3bac8e5c386a22",
            ),
            (
                "none",
                hex(&None::<u32>),
                "2f9054f09a51a482d66371d5a1e49dc4400e8ef4fab83a08978c37233d3a0c65",
            ),
            (
                "some",
                hex(&Some("x")),
                "b30e8dd648d46008a514dfeddcd58be5dc24fc43a3bcdac0bfdd2804bebbb5a6",
            ),
            (
                "unit",
                hex(&()),
                "d5fb09756baaad55cb1660a11eae00f617bb83944556f475dad92dceba655e37",
            ),
            (
                "unit struct",
                hex(&Marker),
                "d5fb09756baaad55cb1660a11eae00f617bb83944556f475dad92dceba655e37",
            ),
            (
                "unit variant",
                hex(&Shape::Empty),
                "ce83e9dea6f55ef23187ba414d1baa528741cbdee57de9222f640630e68a64c5",
            ),
            (
                "newtype variant",
                hex(&Shape::Circle(2.5)),
                "ff9cf959bf57c6af999f9cdf6c088d6f679feb48e687cf71ca27646680018d7d",
            ),
            (
                "tuple variant",
                hex(&Shape::Rect(3, 4)),
                "e87966fcfd40133fa978fdb033df3ac241d59c35f394cc73f1df1e2e8d402f29",
            ),
            (
                "struct variant",
                hex(&Shape::Polygon {
                    sides: 6,
                    label: "hex".to_owned(),
                }),
                "75065bfb7048b753833b767a6f0e76abccc74eda9e0beaaa13b9a1382a4da089",
            ),
            (
                "newtype struct",
                hex(&Id(5)),
                "aa32ab3eaaf5f0a921cb4d82bf4b63f14da342679e83b70e2669e62348783d74",
            ),
            (
                "vec",
                hex(&vec![1u16, 2, 3]),
                "50fb1746a4c925188cb1b8d7b8db4f6342e2a7374c00d7f931dc2486607ae094",
            ),
            (
                "empty vec",
                hex(&Vec::<u8>::new()),
                "5e74200b9a7f49152f55c492d3a727c7b7965a5bbb394a01092065ee55f8bbc4",
            ),
            (
                "tuple",
                hex(&(1u8, "two", 3.0f64)),
                "a917ee328630d9023b1c86920c46e12b5f245996d9be3acce50bf7db6443ebba",
            ),
            (
                "tuple struct",
                hex(&Pair(1, -1)),
                "ec955add8a2ef8e2be6aa79b3934b458a824e76781ac2d53f91e8424a24ca553",
            ),
            (
                "nested maps",
                hex(&nested),
                "c3b1909f253baf01fcbf48cf954705b78ca8b49c0a69cc76595a8577b4438da1",
            ),
            (
                "struct",
                hex(&request),
                "5b6abfbd31822b2aa01f04c254248f713d5609b7271784840e17b682dc47ae9a",
            ),
        ];
        let mismatches: Vec<String> = cases
            .iter()
            .filter(|(_, actual, pinned)| actual != pinned)
            .map(|(label, actual, pinned)| format!("{label}: got {actual}, pinned {pinned:?}"))
            .collect();
        assert!(
            mismatches.is_empty(),
            "key encoding changed (breaking change):\n{}",
            mismatches.join("\n")
        );
    }

    // ---- 3. properties ------------------------------------------------------

    #[test]
    fn hash_map_order_and_capacity_do_not_matter() {
        let entries: Vec<(String, u32)> = (0..20u32)
            .map(|i| (format!("key-{i}"), i * 7 + 1))
            .collect();
        let btree: BTreeMap<String, u32> = entries.iter().cloned().collect();
        let want = d(&btree);

        let mut orders = HashSet::new();
        for round in 0..8 {
            let mut map = HashMap::with_capacity_and_hasher(20 + round * 37, RandomState::new());
            if round % 2 == 0 {
                map.extend(entries.iter().cloned());
            } else {
                map.extend(entries.iter().rev().cloned());
            }
            orders.insert(map.keys().cloned().collect::<Vec<_>>());
            assert_eq!(d(&map), want, "round {round}");
        }
        assert!(
            orders.len() > 1,
            "the HashMaps all iterated in the same order; the test proves nothing"
        );
    }

    #[test]
    fn map_entries_are_paired() {
        let a = BTreeMap::from([(1, 2), (3, 4)]);
        let b = BTreeMap::from([(1, 4), (3, 2)]);
        assert_ne!(d(&a), d(&b));
        // A map is not the seq of its pairs.
        assert_ne!(d(&a), d(&vec![(1, 2), (3, 4)]));
        assert_ne!(d(&BTreeMap::<u8, u8>::new()), d(&Vec::<u8>::new()));
    }

    #[test]
    fn split_key_value_calls_match_serialize_entry() {
        let pairs = [(1u8, "one"), (2, "two"), (3, "three")];
        let map: BTreeMap<u8, &str> = pairs.iter().copied().collect();
        assert_eq!(d(&SplitMap(&pairs)), d(&map));
    }

    #[test]
    fn distinct_values_give_distinct_digests() {
        assert_ne!(d(&vec![1, 2]), d(&vec![2, 1]));
        assert_ne!(d(&(1u32,)), d(&(1u64,)));
        assert_ne!(d(&1u32), d(&1i32));
        assert_ne!(d(&Some(())), d(&None::<()>));
        assert_ne!(d(""), d(&()));
        assert_ne!(d(&("ab", "c")), d(&("a", "bc")));
        assert_ne!(d(&vec!["ab", "c"]), d(&vec!["a", "bc"]));
        assert_ne!(d(&vec![vec![1], vec![]]), d(&vec![vec![], vec![1]]));
        assert_ne!(d("abc"), d(&Bytes(b"abc")));
        assert_ne!(d(&Some(Some(1))), d(&Some(1)));
        assert_ne!(d(&(1u8, 2u8)), d(&[1u8, 2, 0]));
        assert_ne!(d(&1.0f64), d(&1.0f32));
    }

    #[test]
    fn floats_are_canonicalised() {
        assert_eq!(d(&-0.0f32), d(&0.0f32));
        assert_eq!(d(&-0.0f64), d(&0.0f64));
        assert_eq!(d(&f32::NAN), d(&-f32::NAN));
        assert_eq!(d(&f32::NAN), d(&f32::from_bits(0x7F80_0001)));
        assert_eq!(d(&f64::NAN), d(&-f64::NAN));
        assert_eq!(d(&f64::NAN), d(&f64::from_bits(0x7FF0_0000_0000_0001)));
        assert_ne!(d(&f64::NAN), d(&f64::INFINITY));
        assert_ne!(d(&f64::INFINITY), d(&f64::NEG_INFINITY));
    }

    #[test]
    fn newtypes_are_transparent_and_type_names_ignored() {
        assert_eq!(d(&Id(5)), d(&5u64));
        assert_eq!(d(&5usize), d(&5u64));
        assert_eq!(d(&Marker), d(&()));
        assert_eq!(d(&Pair(1, 2)), d(&(1i32, 2i32)));
        // Skipped fields contribute nothing; the struct name is not encoded.
        assert_eq!(d(&MaybeB { a: 1, b: None }), d(&OnlyA { a: 1 }));
        assert_ne!(d(&MaybeB { a: 1, b: Some(2) }), d(&OnlyA { a: 1 }));
    }

    #[test]
    fn variants_are_identified_by_name() {
        assert_eq!(d(&Shape::Empty), d(&Reordered::Empty));
        assert_ne!(d(&Reordered::Empty), d(&Reordered::Full));
        assert_eq!(d(&Shape::Circle(1.0)), d(&Reordered::Circle(1.0)));
        assert_eq!(d(&Shape::Rect(1, 2)), d(&Reordered::Rect(1, 2)));
        let polygon = |label: &str| Shape::Polygon {
            sides: 3,
            label: label.to_owned(),
        };
        assert_eq!(
            d(&polygon("tri")),
            d(&Reordered::Polygon {
                sides: 3,
                label: "tri".to_owned(),
            })
        );
        assert_ne!(d(&polygon("tri")), d(&polygon("tri ")));
        // The kind of variant matters, not only its name.
        assert_ne!(d(&Shape::Empty), d(&Shape::Circle(0.0)));
    }

    #[test]
    fn nested_map_inside_vec_inside_struct() {
        let inner = |seed: i64| -> Vec<(String, i64)> {
            (0..12).map(|i| (format!("f{i}"), seed * i)).collect()
        };
        let hashed = |seed: i64, capacity: usize| -> HashMap<u8, HashMap<String, i64>> {
            let mut outer = HashMap::with_capacity_and_hasher(capacity, RandomState::new());
            for k in 0..6u8 {
                let mut map = HashMap::with_capacity_and_hasher(capacity, RandomState::new());
                map.extend(inner(seed + i64::from(k)));
                outer.insert(k, map);
            }
            outer
        };
        let sorted = |seed: i64| -> BTreeMap<u8, BTreeMap<String, i64>> {
            (0..6u8)
                .map(|k| (k, inner(seed + i64::from(k)).into_iter().collect()))
                .collect()
        };

        let a = Outer {
            name: "report",
            items: vec![hashed(1, 0), hashed(10, 0)],
        };
        let b = Outer {
            name: "report",
            items: vec![hashed(1, 100), hashed(10, 50)],
        };
        let c = Outer {
            name: "report",
            items: vec![sorted(1), sorted(10)],
        };
        assert_eq!(d(&a), d(&b));
        assert_eq!(d(&a), d(&c));

        let swapped = Outer {
            name: "report",
            items: vec![sorted(10), sorted(1)],
        };
        assert_ne!(d(&c), d(&swapped));
        let mut changed = sorted(10);
        changed.get_mut(&3).unwrap().insert("f0".to_owned(), -1);
        let changed = Outer {
            name: "report",
            items: vec![sorted(1), changed],
        };
        assert_ne!(d(&c), d(&changed));
    }

    #[test]
    fn seq_of_unknown_length_equals_vec() {
        let numbers = [1u32, 2, 3, 4, 5, 6, 8, 11];
        let filtered = numbers.iter().filter(|n| *n % 2 == 0);
        let (low, high) = filtered.size_hint();
        assert_ne!(Some(low), high, "the length must be unknown to serde");
        let evens: Vec<u32> = filtered.copied().collect();
        assert_eq!(d(&Evens(&numbers)), d(&evens));
        assert_eq!(d(&Evens(&[1, 3])), d(&Vec::<u32>::new()));
    }

    #[test]
    fn digest_is_deterministic() {
        let value = (Some("x"), vec![1u8, 2], BTreeMap::from([("k", 1.5f64)]));
        assert_eq!(d(&value), d(&value));
    }

    // ---- 4. errors ------------------------------------------------------------

    #[test]
    fn serialize_errors_are_reported() {
        let err = digest(&Failing).unwrap_err();
        assert!(err.message().contains("boom"), "{err:?}");
        assert!(err.to_string().contains("boom"));
        let boxed: Box<dyn std::error::Error> = Box::new(err.clone());
        assert!(boxed.to_string().contains("boom"));

        // Errors propagate out of nested values and map entries.
        let nested = digest(&(1u8, vec![Some(Failing)])).unwrap_err();
        assert_eq!(nested, err);
        let in_map = digest(&BTreeMap::from([(1u8, Failing)])).unwrap_err();
        assert_eq!(in_map.message(), "boom");
    }

    #[test]
    fn misused_map_serializer_is_an_error() {
        let value_without_key = digest(&BadMap::ValueWithoutKey).unwrap_err();
        assert!(value_without_key.message().contains("without a key"));
        let key_without_value = digest(&BadMap::KeyWithoutValue).unwrap_err();
        assert!(key_without_value.message().contains("no value"));
        let two_keys = digest(&BadMap::TwoKeys).unwrap_err();
        assert!(two_keys.message().contains("without a value"));
    }

    #[test]
    fn key_encode_error_from_custom() {
        let err = <KeyEncodeError as serde::ser::Error>::custom(format_args!("bad {}", 7));
        assert_eq!(err.message(), "bad 7");
        assert_eq!(err.to_string(), "bad 7");
    }

    // ---- 5. hex ---------------------------------------------------------------

    #[test]
    fn push_hex_matches_format() {
        for value in [d(&1u8), d("hello"), [0u8; 32], [0xFF; 32]] {
            let manual: String = value.iter().map(|b| format!("{b:02x}")).collect();
            let mut out = String::from("prefix:");
            push_hex(&value, &mut out);
            assert_eq!(out, format!("prefix:{manual}"));
            assert_eq!(out.len(), "prefix:".len() + 64);
        }
    }
}

//! Value formats: the [`Codec`] trait and the built-in JSON and binary codecs.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// An error from a [`Codec`]: the message of the underlying format library.
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
    /// An error with this message.
    ///
    /// ```
    /// let e = cache_runtime::CodecError::new("bad tag");
    /// assert_eq!(e.message(), "bad tag");
    /// ```
    pub fn new(message: impl fmt::Display) -> Self {
        CodecError {
            message: message.to_string(),
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

    /// Runs `$decode` with a bincode configuration whose memory limit fits
    /// `$len` input bytes: a decoded value may claim at most 32 bytes of
    /// memory per input byte (at least 64 KiB), so a corrupt length prefix in
    /// a tiny value cannot make bincode allocate hundreds of megabytes. The
    /// limit is a const generic, hence the few fixed tiers.
    macro_rules! with_limit_for {
        ($len:expr, |$config:ident| $decode:expr) => {{
            let need = ($len).saturating_mul(32);
            if need <= 64 << 10 {
                let $config = bincode::config::standard().with_limit::<{ 64 << 10 }>();
                $decode
            } else if need <= 1 << 20 {
                let $config = bincode::config::standard().with_limit::<{ 1 << 20 }>();
                $decode
            } else if need <= 32 << 20 {
                let $config = bincode::config::standard().with_limit::<{ 32 << 20 }>();
                $decode
            } else {
                let $config = bincode::config::standard().with_limit::<{ 1 << 30 }>();
                $decode
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

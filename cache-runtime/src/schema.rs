//! Schema fingerprints: a stable hash of a stored type's serde shape, so a
//! value written by a binary whose type had another shape is a miss, not a
//! wrong value.
//!
//! The shape is traced from the type's `Deserialize` (with `serde-reflection`):
//! container and field names, field order, the type of every field, enum
//! variants. It does not depend on the process, the machine or the build, so
//! every instance of one release computes the same fingerprint. A type the
//! tracer cannot follow gets `0`, "unknown", and its values are read as
//! before: types deserialized through `deserialize_any` (`serde_json::Value`,
//! untagged enums, `#[serde(flatten)]`) and `Deserialize` impls that refuse
//! the tracer's placeholder values.

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};

/// Enum variants are found one trace at a time; a type whose tracing needs
/// more rounds than this gets no fingerprint.
const MAX_ROUNDS: usize = 1024;

/// `T`'s fingerprint, traced once per process and type (`0` if unknown).
pub(crate) fn fingerprint<T: DeserializeOwned>() -> u64 {
    static TRACED: OnceLock<RwLock<HashMap<&'static str, u64>>> = OnceLock::new();
    let name = std::any::type_name::<T>();
    let traced = TRACED.get_or_init(Default::default);
    if let Some(&fp) = traced
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
    {
        return fp;
    }
    // Traced outside the lock: a Deserialize impl may be slow, or cached itself.
    let fp = trace::<T>();
    traced
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name, fp);
    fp
}

/// Per site: the last type seen and its fingerprint, so a call pays a
/// pointer compare, not a map lookup (a generic function's site sees several
/// types; the map answers for the others).
pub(crate) struct SiteSchema(OnceLock<(&'static str, u64)>);

impl SiteSchema {
    pub(crate) const fn new() -> Self {
        SiteSchema(OnceLock::new())
    }

    pub(crate) fn of<T: DeserializeOwned>(&self) -> u64 {
        let name = std::any::type_name::<T>();
        match self.0.get() {
            Some((seen, fp)) if std::ptr::eq(*seen, name) => *fp,
            Some(_) => fingerprint::<T>(),
            None => {
                let fp = fingerprint::<T>();
                let _ = self.0.set((name, fp));
                fp
            }
        }
    }
}

impl std::fmt::Debug for SiteSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SiteSchema")
    }
}

fn trace<T: DeserializeOwned>() -> u64 {
    use serde_reflection::{Error, Samples, Tracer, TracerConfig};
    let samples = Samples::new();
    // Enums nested in `T` reveal one more variant per trace once their
    // "incomplete" mark is cleared; the marks' names come from the error of
    // the previous attempt.
    let mut enums: Vec<String> = Vec::new();
    let mut rounds = 1;
    while rounds <= MAX_ROUNDS {
        let mut tracer = Tracer::new(TracerConfig::default());
        let mut root = None;
        for _ in 0..rounds {
            match tracer.trace_type_once::<T>(&samples) {
                Ok((format, _)) => root = Some(format),
                Err(error) => {
                    tracing::debug!(r#type = std::any::type_name::<T>(), %error, "no schema fingerprint: the type cannot be traced");
                    return 0;
                }
            }
            for name in &enums {
                tracer.check_incomplete_enum(name);
            }
        }
        match tracer.registry() {
            Ok(registry) => {
                let mut hasher = Sha256::new();
                // Both serialize deterministically (the registry is sorted).
                let shape = serde_json::to_vec(&(&root, &registry)).unwrap_or_default();
                hasher.update(&shape);
                let digest = hasher.finalize();
                let mut word = [0u8; 8];
                word.copy_from_slice(&digest[..8]);
                // 0 means "unknown"; a real shape never takes it.
                return u64::from_be_bytes(word).max(1);
            }
            Err(Error::MissingVariants(names)) => {
                for name in names {
                    if !enums.contains(&name) {
                        enums.push(name);
                    }
                }
                rounds *= 2;
            }
            Err(error) => {
                tracing::debug!(r#type = std::any::type_name::<T>(), %error, "no schema fingerprint: the type cannot be traced");
                return 0;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::fingerprint;
    use serde::Deserialize;

    mod v1 {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Product {
            pub a: u32,
            pub b: Option<u32>,
        }
    }
    mod v2 {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Product {
            pub a: u32,
            #[serde(default)]
            pub c: u32,
        }
    }
    mod renamed {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Product {
            pub a: u32,
            pub bb: Option<u32>,
        }
    }
    mod retyped {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Product {
            pub a: u32,
            pub b: Option<u64>,
        }
    }
    mod reordered {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Product {
            pub b: Option<u32>,
            pub a: u32,
        }
    }
    mod same {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Product {
            pub a: u32,
            pub b: Option<u32>,
        }
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Kind {
        Plain,
        Sized(u8),
        Named { on: bool, inner: Inner },
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Inner {
        X,
        Y(String),
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct WithEnums {
        kind: Kind,
        many: Vec<Inner>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum KindMore {
        Plain,
        Sized(u8),
        Named { on: bool, inner: Inner },
        Extra,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    #[serde(untagged)]
    enum Untagged {
        A(u32),
        B(String),
    }

    #[test]
    fn a_change_of_shape_changes_the_fingerprint() {
        let base = fingerprint::<v1::Product>();
        assert_ne!(base, 0);
        assert_eq!(
            base,
            fingerprint::<same::Product>(),
            "the shape, not the path"
        );
        for (what, other) in [
            ("added and removed fields", fingerprint::<v2::Product>()),
            ("a renamed field", fingerprint::<renamed::Product>()),
            ("a retyped field", fingerprint::<retyped::Product>()),
            ("reordered fields", fingerprint::<reordered::Product>()),
        ] {
            assert_ne!(base, other, "{what}");
        }
    }

    #[test]
    fn nested_enums_are_traced_to_their_last_variant() {
        let fp = fingerprint::<WithEnums>();
        assert_ne!(fp, 0);
        assert_ne!(
            fingerprint::<Kind>(),
            fingerprint::<KindMore>(),
            "an added variant"
        );
        assert_ne!(fingerprint::<Kind>(), 0);
    }

    #[test]
    fn what_cannot_be_traced_is_unknown() {
        assert_eq!(fingerprint::<Untagged>(), 0);
        assert_eq!(fingerprint::<serde_json::Value>(), 0);
        assert_ne!(fingerprint::<u64>(), fingerprint::<String>());
    }

    #[test]
    fn the_fingerprint_is_stable() {
        // Pinned: the same shape gives the same fingerprint in every
        // process, on every machine, in every release that keeps the
        // tracing format. A change here changes what stored values match.
        let pinned = fingerprint::<Vec<Option<u32>>>();
        assert_eq!(pinned, PINNED_VEC_OPTION_U32, "{pinned:#x}");
    }

    const PINNED_VEC_OPTION_U32: u64 = 0x7889_1bc8_a296_fe9e;
}

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
//! untagged enums, `#[serde(flatten)]`), `Deserialize` impls that refuse or
//! panic on the tracer's placeholder values, and recursive enums whose first
//! variant recurses (`enum Expr { Add(Box<Expr>, Box<Expr>), Lit(u32) }`:
//! the tracer follows the first variant of an enum it meets again, so it
//! would never stop; the trace is cut at [`guard::MAX_DEPTH`] nested values
//! instead. Put a variant that does not recurse first to get a fingerprint).

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{OnceLock, PoisonError, RwLock};

/// Enum variants are found one trace at a time; a type whose tracing needs
/// more rounds than this gets no fingerprint.
const MAX_ROUNDS: usize = 1024;

/// `T`'s fingerprint, traced once per process and type (`0` if unknown).
///
/// What a call pays: a lookup in this thread's table, keyed by the address
/// of `T`'s type name (no lock, no string hashing). A thread's first call
/// for a type reads the process-wide table, under a read lock; the first
/// call in the process traces the type, outside any lock.
pub(crate) fn fingerprint<T: DeserializeOwned>() -> u64 {
    let name = std::any::type_name::<T>();
    let id = (name.as_ptr() as usize, name.len());
    // `try_with`: a call from a thread-local's destructor skips the table.
    if let Ok(Some(fp)) = SEEN.try_with(|seen| seen.borrow().get(&id).copied()) {
        return fp;
    }
    let fp = shared::<T>(name);
    let _ = SEEN.try_with(|seen| seen.borrow_mut().insert(id, fp));
    fp
}

thread_local! {
    /// This thread's copy of the fingerprints it has used, by the address
    /// and length of the type's name (one type's name may have several
    /// addresses: each gets its entry).
    static SEEN: RefCell<HashMap<(usize, usize), u64, BuildHasherDefault<AddressHasher>>> =
        RefCell::default();
}

/// Hashes the addresses of [`SEEN`] with a multiply and a rotate: they are
/// not chosen by anyone, so nothing stronger is needed.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The process-wide table, by type name: each type is traced once.
fn shared<T: DeserializeOwned>(name: &'static str) -> u64 {
    static TRACED: OnceLock<RwLock<HashMap<&'static str, u64>>> = OnceLock::new();
    #[cfg(test)]
    tests::SHARED_LOOKUPS.with(|n| n.set(n.get() + 1));
    let traced = TRACED.get_or_init(Default::default);
    if let Some(&fp) = traced
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
    {
        return fp;
    }
    // Traced outside the lock: a Deserialize impl may be slow, or cached itself.
    let fp = trace_caught::<T>();
    traced
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name, fp);
    fp
}

/// Per site: the first type seen and its fingerprint, so a call pays a
/// pointer compare, not a lookup. A generic function's site sees several
/// types: [`fingerprint`] answers for the others.
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

/// [`trace`], with a panic of `T`'s `Deserialize` (on a placeholder value it
/// did not expect) caught: then `T` is unknown, and the caller goes on.
fn trace_caught<T: DeserializeOwned>() -> u64 {
    match std::panic::catch_unwind(trace::<T>) {
        Ok(fp) => fp,
        Err(_) => {
            tracing::warn!(
                r#type = std::any::type_name::<T>(),
                "no schema fingerprint: the type's Deserialize panicked on the tracer's placeholder \
                 values (the panic above); its values are read without a shape check"
            );
            0
        }
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
            match tracer.trace_type_once_with_seed(&samples, guard::Root::<T>::new()) {
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

/// A depth limit around the tracer's `Deserializer`: every nested value
/// (field, element, variant, `Some`) is one level deeper, and a trace that
/// goes past [`MAX_DEPTH`] fails, as any untraceable type does, instead of
/// overflowing the stack, which would abort the process.
mod guard {
    use serde::de::{
        self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess,
        Visitor,
    };
    use std::fmt;
    use std::marker::PhantomData;

    /// Far deeper than any type is written by hand (each struct, `Option`,
    /// collection or enum is one level), and shallow enough that even an
    /// unoptimized build stays within a small thread stack.
    pub(crate) const MAX_DEPTH: usize = 32;

    /// `inner` (a deserializer, visitor, access or seed) `depth` values down.
    pub(super) struct Guard<X> {
        inner: X,
        depth: usize,
    }

    impl<X> Guard<X> {
        fn at(inner: X, depth: usize) -> Self {
            Guard { inner, depth }
        }
    }

    /// The seed the trace starts from: `T` at depth 0.
    pub(super) struct Root<T>(PhantomData<fn() -> T>);

    impl<T> Root<T> {
        pub(super) fn new() -> Self {
            Root(PhantomData)
        }
    }

    impl<'de, T: de::Deserialize<'de>> DeserializeSeed<'de> for Root<T> {
        type Value = T;
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
            T::deserialize(Guard::at(deserializer, 0))
        }
    }

    macro_rules! deserialize {
        ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                if self.depth > MAX_DEPTH {
                    return Err(de::Error::custom(format_args!(
                        "nested more than {MAX_DEPTH} values deep (a recursive enum whose first variant recurses?)"
                    )));
                }
                self.inner.$method($($arg,)* Guard::at(visitor, self.depth))
            }
        )*};
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for Guard<D> {
        type Error = D::Error;
        deserialize! {
            deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
            deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
            deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
            deserialize_f32(); deserialize_f64(); deserialize_char(); deserialize_str();
            deserialize_string(); deserialize_bytes(); deserialize_byte_buf();
            deserialize_option(); deserialize_unit();
            deserialize_unit_struct(name: &'static str);
            deserialize_newtype_struct(name: &'static str);
            deserialize_seq(); deserialize_tuple(len: usize);
            deserialize_tuple_struct(name: &'static str, len: usize);
            deserialize_map();
            deserialize_struct(name: &'static str, fields: &'static [&'static str]);
            deserialize_enum(name: &'static str, variants: &'static [&'static str]);
            deserialize_identifier(); deserialize_ignored_any();
        }
        fn is_human_readable(&self) -> bool {
            self.inner.is_human_readable()
        }
    }

    macro_rules! visit {
        ($($method:ident($ty:ty);)*) => {$(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.inner.$method(v)
            }
        )*};
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for Guard<V> {
        type Value = V::Value;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.inner.expecting(f)
        }
        visit! {
            visit_bool(bool); visit_i8(i8); visit_i16(i16); visit_i32(i32); visit_i64(i64);
            visit_i128(i128); visit_u8(u8); visit_u16(u16); visit_u32(u32); visit_u64(u64);
            visit_u128(u128); visit_f32(f32); visit_f64(f64); visit_char(char);
            visit_str(&str); visit_borrowed_str(&'de str); visit_string(String);
            visit_bytes(&[u8]); visit_borrowed_bytes(&'de [u8]); visit_byte_buf(Vec<u8>);
        }
        fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
            self.inner.visit_none()
        }
        fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
            self.inner.visit_unit()
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
            self.inner.visit_some(Guard::at(d, self.depth + 1))
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
            self.inner
                .visit_newtype_struct(Guard::at(d, self.depth + 1))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
            self.inner.visit_seq(Guard::at(seq, self.depth))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
            self.inner.visit_map(Guard::at(map, self.depth))
        }
        fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
            self.inner.visit_enum(Guard::at(data, self.depth))
        }
    }

    /// A nested value's seed: its deserializer is guarded at the seed's depth.
    impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Guard<S> {
        type Value = S::Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
            self.inner.deserialize(Guard::at(d, self.depth))
        }
    }

    impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Guard<A> {
        type Error = A::Error;
        fn next_element_seed<S: DeserializeSeed<'de>>(
            &mut self,
            seed: S,
        ) -> Result<Option<S::Value>, A::Error> {
            self.inner
                .next_element_seed(Guard::at(seed, self.depth + 1))
        }
        fn size_hint(&self) -> Option<usize> {
            self.inner.size_hint()
        }
    }

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for Guard<A> {
        type Error = A::Error;
        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            self.inner.next_key_seed(Guard::at(seed, self.depth + 1))
        }
        fn next_value_seed<S: DeserializeSeed<'de>>(
            &mut self,
            seed: S,
        ) -> Result<S::Value, A::Error> {
            self.inner.next_value_seed(Guard::at(seed, self.depth + 1))
        }
        fn size_hint(&self) -> Option<usize> {
            self.inner.size_hint()
        }
    }

    impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Guard<A> {
        type Error = A::Error;
        type Variant = Guard<A::Variant>;
        fn variant_seed<S: DeserializeSeed<'de>>(
            self,
            seed: S,
        ) -> Result<(S::Value, Self::Variant), A::Error> {
            let depth = self.depth;
            let (tag, variant) = self.inner.variant_seed(Guard::at(seed, depth + 1))?;
            Ok((tag, Guard::at(variant, depth)))
        }
    }

    impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Guard<A> {
        type Error = A::Error;
        fn unit_variant(self) -> Result<(), A::Error> {
            self.inner.unit_variant()
        }
        fn newtype_variant_seed<S: DeserializeSeed<'de>>(
            self,
            seed: S,
        ) -> Result<S::Value, A::Error> {
            self.inner
                .newtype_variant_seed(Guard::at(seed, self.depth + 1))
        }
        fn tuple_variant<V: Visitor<'de>>(
            self,
            len: usize,
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            self.inner
                .tuple_variant(len, Guard::at(visitor, self.depth))
        }
        fn struct_variant<V: Visitor<'de>>(
            self,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            self.inner
                .struct_variant(fields, Guard::at(visitor, self.depth))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{fingerprint, SiteSchema};
    use serde::Deserialize;
    use std::cell::Cell;

    thread_local! {
        /// How often this thread has read the process-wide table.
        pub(super) static SHARED_LOOKUPS: Cell<usize> = const { Cell::new(0) };
    }

    #[test]
    fn a_thread_reads_the_shared_table_once_per_type() {
        let expected = fingerprint::<v1::Product>();
        let on_a_new_thread = move || {
            let site = SiteSchema::new();
            for _ in 0..3 {
                // A generic site's first type, then its second; the
                // direct API's lookup.
                assert_eq!(site.of::<v1::Product>(), expected);
                assert_ne!(site.of::<v2::Product>(), expected);
                assert_eq!(fingerprint::<v1::Product>(), expected);
            }
            SHARED_LOOKUPS.with(Cell::get)
        };
        let lookups = std::thread::spawn(on_a_new_thread).join().unwrap();
        assert_eq!(lookups, 2, "once for each of the two types, then never");
    }

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

    /// The tracer follows the first variant of an enum it meets again: here
    /// that recurses for ever.
    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Expr {
        Add(Box<Expr>, Box<Expr>),
        Lit(u32),
    }

    /// The same with the base case first: the tracer can follow it.
    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum BaseFirst {
        Lit(u32),
        Add(Box<BaseFirst>, Box<BaseFirst>),
        Neg { of: Box<BaseFirst> },
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Tree {
        label: String,
        children: Vec<Tree>,
        expr: Option<Box<Expr>>,
    }

    #[test]
    fn a_recursive_type_is_traced_or_unknown_never_a_stack_overflow() {
        // Without the depth guard, this overflows the stack and aborts
        // the test binary. A small stack shows that the guard cuts the
        // trace well before any thread's stack runs out.
        let on_small_stack = |f: fn() -> u64| {
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(f)
                .unwrap()
                .join()
                .unwrap()
        };
        assert_eq!(on_small_stack(fingerprint::<Expr>), 0);
        assert_eq!(on_small_stack(fingerprint::<Tree>), 0, "Expr inside");
        assert_eq!(on_small_stack(fingerprint::<Vec<Option<Expr>>>), 0);
        assert_ne!(on_small_stack(fingerprint::<BaseFirst>), 0);
    }

    /// Refuses what the tracer gives it (an empty string) by panicking.
    #[allow(dead_code)]
    struct Panics(String);

    impl<'de> Deserialize<'de> for Panics {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let s = String::deserialize(d)?;
            assert!(!s.is_empty(), "an empty name");
            Ok(Panics(s))
        }
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct HoldsPanics {
        id: u32,
        name: Panics,
    }

    #[test]
    fn a_deserialize_that_panics_is_unknown() {
        assert_eq!(fingerprint::<Panics>(), 0);
        assert_eq!(fingerprint::<HoldsPanics>(), 0);
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

//! Building full keys: `{prefix}:{key}`, `{prefix}:{name}:{hash}`, and
//! patterns confined to the prefix.

pub(crate) mod encode;

use crate::backend::glob;
use std::fmt::{self, Write as _};

pub use encode::{KeyEncodeError, KEY_ENCODING_VERSION};

/// `{prefix}:{key}` in one allocation.
pub(crate) fn full(prefix: &str, key: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1 + key.len());
    out.push_str(prefix);
    out.push(':');
    out.push_str(key);
    out
}

/// `{prefix}:{rendered template}`, rendered straight into the key string;
/// `None` if a placeholder's `Display` failed (no truncated key is used).
///
/// The macro wraps every placeholder in [`key_part`], so a value cannot
/// bring a `:` of its own, and a template cannot start with `__`: a key that
/// starts with `__` here came from a value, and its first `_` is escaped, so
/// no template lands in the library's own namespace (`{prefix}:__tag:`,
/// `{prefix}:__wb:`, ...).
pub(crate) fn templated(prefix: &str, args: fmt::Arguments<'_>) -> Option<String> {
    let mut out = String::with_capacity(prefix.len() + 1 + args.as_str().map_or(32, str::len));
    out.push_str(prefix);
    out.push(':');
    out.write_fmt(args).ok()?;
    let start = prefix.len() + 1;
    if out[start..].starts_with(RESERVED) {
        out.replace_range(start..start + 1, "%5F");
    }
    Some(out)
}

/// Relative keys that start with this belong to the library.
pub(crate) const RESERVED: &str = "__";

/// A placeholder's value as it goes into a key: its `Display`, with `%`
/// written `%25` and `:` written `%3A`, so that distinct values give distinct
/// keys (`pair:{a}:{b}` renders `("1:2", "3")` and `("1", "2:3")` apart) and
/// ids and slugs stay as they are.
///
/// ```
/// use cache_runtime::__private::key_part;
/// assert_eq!(key_part(&"1:2").to_string(), "1%3A2");
/// assert_eq!(key_part(&"100%").to_string(), "100%25");
/// assert_eq!(key_part(&"lamp-42").to_string(), "lamp-42");
/// ```
pub fn key_part<T: fmt::Display + ?Sized>(value: &T) -> KeyPart<'_, T> {
    KeyPart(value)
}

/// See [`key_part`].
pub struct KeyPart<'a, T: ?Sized>(&'a T);

impl<T: fmt::Display + ?Sized> fmt::Display for KeyPart<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaper(f), "{}", self.0)
    }
}

/// Writes through to `f` with `%` and `:` percent-encoded, without buffering.
struct Escaper<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for Escaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find([':', '%']) {
            self.0.write_str(&rest[..at])?;
            self.0.write_str(if rest.as_bytes()[at] == b':' {
                "%3A"
            } else {
                "%25"
            })?;
            rest = &rest[at + 1..];
        }
        self.0.write_str(rest)
    }
}

/// The key a tag's bookkeeping lives under: `{prefix}:__tag:{tag}`.
pub(crate) fn tag(prefix: &str, tag: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 7 + tag.len());
    out.push_str(prefix);
    out.push_str(":__tag:");
    out.push_str(tag);
    out
}

/// [`tag`] from a rendered template; `None` if a `Display` failed.
pub(crate) fn tag_rendered(prefix: &str, args: fmt::Arguments<'_>) -> Option<String> {
    let mut out = String::with_capacity(prefix.len() + 7 + args.as_str().map_or(16, str::len));
    out.push_str(prefix);
    out.push_str(":__tag:");
    out.write_fmt(args).ok()?;
    Some(out)
}

/// `{prefix}:{name}:{hex digest of the arguments}` in one allocation.
pub(crate) fn hashed<A: serde::Serialize + ?Sized>(
    prefix: &str,
    name: &str,
    args: &A,
) -> Result<String, KeyEncodeError> {
    let digest = encode::digest(args)?;
    let mut out = String::with_capacity(prefix.len() + name.len() + 2 + 64);
    out.push_str(prefix);
    out.push(':');
    out.push_str(name);
    out.push(':');
    encode::push_hex(&digest, &mut out);
    Ok(out)
}

/// `{escaped prefix}:{pattern}`: the pattern can only reach keys under the
/// prefix, whatever glob characters the prefix contains.
pub(crate) fn pattern(prefix: &str, pattern: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1 + pattern.len() + 4);
    glob::escape_into(prefix, &mut out);
    out.push(':');
    out.push_str(pattern);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(full("shop", "product:1"), "shop:product:1");
        let id = 42;
        assert_eq!(
            templated("shop", format_args!("product:{id}")).as_deref(),
            Some("shop:product:42")
        );
        let k = hashed("shop", "m::f", &(&1u64,)).unwrap();
        assert!(k.starts_with("shop:m::f:"));
        assert_eq!(k.len(), "shop:m::f:".len() + 64);
        assert_eq!(pattern("a*b", "x:*"), "a\\*b:x:*");
    }

    fn pair(a: &str, b: &str) -> String {
        templated("p", format_args!("pair:{}:{}", key_part(a), key_part(b))).unwrap()
    }

    #[test]
    fn placeholder_values_cannot_run_into_each_other() {
        assert_eq!(pair("1:2", "3"), "p:pair:1%3A2:3");
        assert_eq!(pair("1", "2:3"), "p:pair:1:2%3A3");
        assert_ne!(
            pair("1%3A2", "3"),
            pair("1:2", "3"),
            "a literal %3A is not a colon"
        );
        assert_eq!(pair("lamp-42", "eu_west"), "p:pair:lamp-42:eu_west");
    }

    #[test]
    fn no_template_lands_in_the_reserved_namespace() {
        let value = "__tag";
        let key = templated("p", format_args!("{}:products", key_part(value))).unwrap();
        assert_eq!(key, "p:%5F_tag:products");
        assert!(!key.starts_with("p:__"));
        let plain = templated("p", format_args!("{}:x", key_part("_one"))).unwrap();
        assert_eq!(plain, "p:_one:x", "one underscore is not reserved");
    }

    #[test]
    fn a_failing_display_gives_no_key() {
        struct Broken;
        impl fmt::Display for Broken {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("partial")?;
                Err(fmt::Error)
            }
        }
        assert_eq!(
            templated("p", format_args!("k:{}", key_part(&Broken))),
            None
        );
        assert_eq!(
            tag_rendered("p", format_args!("t:{}", key_part(&Broken))),
            None
        );
    }

    #[test]
    fn hashed_key_allocates_exactly_once_worth_of_capacity() {
        let k = hashed("cache", "crate::module::function", &(&7u32, &"x")).unwrap();
        assert_eq!(
            k.capacity(),
            k.len(),
            "the capacity estimate is exact, so no regrowth"
        );
    }
}

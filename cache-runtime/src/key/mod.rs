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

/// `{prefix}:{rendered template}`, rendered straight into the key string.
pub(crate) fn templated(prefix: &str, args: fmt::Arguments<'_>) -> String {
    let mut out = String::with_capacity(prefix.len() + 1 + args.as_str().map_or(32, str::len));
    out.push_str(prefix);
    out.push(':');
    // Writing into a String cannot fail unless a Display impl lies about it.
    let _ = out.write_fmt(args);
    out
}

/// The key a tag's bookkeeping lives under: `{prefix}:__tag:{tag}`.
pub(crate) fn tag(prefix: &str, tag: &str) -> String {
    tag_rendered(prefix, format_args!("{tag}"))
}

/// [`tag`] from a rendered template.
pub(crate) fn tag_rendered(prefix: &str, args: fmt::Arguments<'_>) -> String {
    let mut out = String::with_capacity(prefix.len() + 7 + args.as_str().map_or(16, str::len));
    out.push_str(prefix);
    out.push_str(":__tag:");
    let _ = out.write_fmt(args);
    out
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
            templated("shop", format_args!("product:{id}")),
            "shop:product:42"
        );
        let k = hashed("shop", "m::f", &(&1u64,)).unwrap();
        assert!(k.starts_with("shop:m::f:"));
        assert_eq!(k.len(), "shop:m::f:".len() + 64);
        assert_eq!(pattern("a*b", "x:*"), "a\\*b:x:*");
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

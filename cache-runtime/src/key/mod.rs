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
/// written `%25` and `:` written `%3A`, so that distinct values give
/// distinct keys in a template whose literal text has no other ASCII
/// punctuation (`pair:{a}:{b}` renders `("1:2", "3")` and `("1", "2:3")`
/// apart), and ids and slugs stay as they are.
///
/// A template with other separators escapes those too
/// ([`KeyPart::escaping`]): the rule is that a value has `%`, `:` and every
/// ASCII character other than a letter or digit that occurs in the
/// template's literal text percent-encoded (`%` and two upper-case hex
/// digits). The macro rejects two placeholders with no such character
/// between them, so the first separator after a value is never part of it,
/// and a rendered key has exactly one reading.
///
/// ```
/// use cache_runtime::__private::{key_part, KeyPart};
/// assert_eq!(key_part(&"1:2").to_string(), "1%3A2");
/// assert_eq!(key_part(&"100%").to_string(), "100%25");
/// assert_eq!(key_part(&"lamp-42").to_string(), "lamp-42");
/// // `pair:{a}-{b}`: the `-` of a value is escaped as well.
/// let dash = KeyPart::mask("-:");
/// assert_eq!(key_part(&"lamp-42").escaping(dash).to_string(), "lamp%2D42");
/// ```
pub fn key_part<T: fmt::Display + ?Sized>(value: &T) -> KeyPart<'_, T> {
    KeyPart {
        value,
        escaped: COLON,
    }
}

/// See [`key_part`].
pub struct KeyPart<'a, T: ?Sized> {
    value: &'a T,
    /// Bit `b` set: the ASCII byte `b` is percent-encoded.
    escaped: u128,
}

/// What [`key_part`] escapes: `%` and `:`.
const COLON: u128 = bit(b'%') | bit(b':');

const fn bit(byte: u8) -> u128 {
    1 << byte
}

impl<T: ?Sized> KeyPart<'_, T> {
    /// The value with the characters of `escaped` (a [`KeyPart::mask`])
    /// percent-encoded, and `%` always, instead of `%` and `:`.
    ///
    /// ```
    /// use cache_runtime::__private::{key_part, KeyPart};
    /// let part = key_part(&"a_b:c").escaping(KeyPart::mask(":_"));
    /// assert_eq!(part.to_string(), "a%5Fb%3Ac");
    /// ```
    pub const fn escaping(self, escaped: u128) -> Self {
        KeyPart {
            value: self.value,
            escaped: escaped | bit(b'%'),
        }
    }
}

impl KeyPart<'static, str> {
    /// The set of `chars`' ASCII characters and `%`, for
    /// [`KeyPart::escaping`]; computed at compile time in the expansion
    /// (`const { KeyPart::mask("-:") }`), so a call pays one bit test per
    /// byte of a value.
    ///
    /// ```
    /// use cache_runtime::__private::KeyPart;
    /// assert_eq!(KeyPart::mask(""), KeyPart::mask("%"));
    /// assert_ne!(KeyPart::mask("-"), KeyPart::mask(":"));
    /// ```
    pub const fn mask(chars: &str) -> u128 {
        let bytes = chars.as_bytes();
        let mut mask = bit(b'%');
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii() {
                mask |= bit(bytes[i]);
            }
            i += 1;
        }
        mask
    }
}

impl<T: fmt::Display + ?Sized> fmt::Display for KeyPart<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            Escaper {
                out: f,
                escaped: self.escaped
            },
            "{}",
            self.value
        )
    }
}

/// Writes through to `out` with the bytes of `escaped` percent-encoded,
/// without buffering.
struct Escaper<'a, 'b> {
    out: &'a mut fmt::Formatter<'b>,
    escaped: u128,
}

impl fmt::Write for Escaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut from = 0;
        for (at, &byte) in s.as_bytes().iter().enumerate() {
            // Bytes of multi-byte characters are >= 0x80: never escaped, and
            // `at` of an ASCII byte is a character boundary.
            if byte < 0x80 && self.escaped & bit(byte) != 0 {
                self.out.write_str(&s[from..at])?;
                let code = [
                    b'%',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 0xF)],
                ];
                self.out
                    .write_str(std::str::from_utf8(&code).map_err(|_| fmt::Error)?)?;
                from = at + 1;
            }
        }
        self.out.write_str(&s[from..])
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

/// [`pattern`] from a rendered template, rendered straight into the string;
/// `None` if a placeholder's `Display` failed (no truncated pattern is used).
pub(crate) fn pattern_rendered(prefix: &str, args: fmt::Arguments<'_>) -> Option<String> {
    let mut out = String::with_capacity(prefix.len() + 1 + args.as_str().map_or(32, str::len));
    glob::escape_into(prefix, &mut out);
    out.push(':');
    out.write_fmt(args).ok()?;
    Some(out)
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

    fn dashed(a: &str, b: &str) -> String {
        let escaped = KeyPart::mask("-:");
        let (a, b) = (key_part(a).escaping(escaped), key_part(b).escaping(escaped));
        templated("p", format_args!("pair:{a}-{b}")).unwrap()
    }

    #[test]
    fn every_separator_of_the_template_is_escaped_in_values() {
        assert_eq!(dashed("1", "2-3"), "p:pair:1-2%2D3");
        assert_eq!(dashed("1-2", "3"), "p:pair:1%2D2-3");
        assert_eq!(dashed("a:b%", "ż-🐢"), "p:pair:a%3Ab%25-ż%2D🐢");
        assert_eq!(dashed("lamp_42", "eu"), "p:pair:lamp_42-eu");
        // Exactly the set and `%`, with each byte's code.
        let set = KeyPart::mask(" {}");
        for byte in 0u8..0x80 {
            let text = char::from(byte).to_string();
            let shown = key_part(text.as_str()).escaping(set).to_string();
            if matches!(byte, b' ' | b'{' | b'}' | b'%') {
                assert_eq!(shown, format!("%{byte:02X}"));
            } else {
                assert_eq!(shown, text);
            }
        }
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
        assert_eq!(
            pattern_rendered("p", format_args!("t:{}:*", key_part(&Broken))),
            None
        );
        assert_eq!(
            pattern_rendered("p*", format_args!("t:{}:*", key_part(&"x"))).as_deref(),
            Some("p\\*:t:x:*")
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

//! Redis-style glob patterns, for the in-process stores and for escaping
//! prefixes.

/// Appends `text` to `out` with every glob metacharacter escaped, so the
/// result matches `text` literally.
pub(crate) fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Whether `text` matches the Redis glob `pattern`: `*` any run, `?` any
/// byte, `[abc]`, `[^abc]`, `[a-z]` classes, `\x` a literal `x`.
pub(crate) fn matches(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matcher: on a mismatch, back up to the last `*` and let it
    // swallow one more byte. Linear in practice, no recursion.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((hit, next)) = class(&pattern[p..], text[t]) {
                        if hit {
                            p += next;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        // An unterminated class is a literal '['.
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if c == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches one byte against the class starting at `pattern[0] == b'['`;
/// returns (matched, length of the class) or `None` if it is unterminated.
fn class(pattern: &[u8], byte: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut hit = false;
    loop {
        let c = *pattern.get(i)?;
        match c {
            b']' => return Some((hit != negate, i + 1)),
            b'\\' => {
                let lit = *pattern.get(i + 1)?;
                hit |= lit == byte;
                i += 2;
            }
            _ if pattern.get(i + 1) == Some(&b'-')
                && pattern.get(i + 2).is_some_and(|&e| e != b']') =>
            {
                let (lo, hi) = (c.min(pattern[i + 2]), c.max(pattern[i + 2]));
                hit |= (lo..=hi).contains(&byte);
                i += 3;
            }
            _ => {
                hit |= c == byte;
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        matches(p.as_bytes(), t.as_bytes())
    }

    #[test]
    fn stars_and_questions() {
        assert!(m("*", ""));
        assert!(m("a*", "abc"));
        assert!(m("*c", "abc"));
        assert!(m("a*c*e", "abcde"));
        assert!(!m("a*c*e", "abcdf"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("products:list:*", "products:list:0:100"));
        assert!(!m("products:list:*", "products:item:1"));
    }

    #[test]
    fn classes() {
        assert!(m("h[ae]llo", "hello"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("x[", "x["));
    }

    #[test]
    fn escaped_prefix_matches_only_itself() {
        let mut p = String::new();
        escape_into("we*rd?[p]\\x", &mut p);
        p.push_str(":*");
        assert!(m(&p, "we*rd?[p]\\x:k"));
        assert!(!m(&p, "weird?[p]\\x:k"));
        assert!(!m(&p, "we*rdX[p]\\x:k"));
        assert!(!m(&p, "we*rd?p\\x:k"));
    }
}

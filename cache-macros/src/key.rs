//! Key templates: `"product:{id}"`, `"user:{user.id}"`, `"t:{self.tenant}"`.

/// Rendered keys relative to the prefix that start with this belong to the
/// runtime (the runtime's `key::RESERVED`): no template and no `name` may
/// start with it.
pub(crate) const RESERVED: &str = "__";

/// A template, split into literal text and placeholders.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Template {
    pub(crate) parts: Vec<Part>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Text(String),
    /// `{a.b.c}`: a parameter (or `self`) and a field path.
    Placeholder(Vec<String>),
}

impl Template {
    /// Parses a template; the error says what is wrong and where.
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        if text.is_empty() {
            // Every call would share one key, the bare prefix.
            return Err(
                "the template is empty; write one like `key = \"product:{id}\"`, \
                        or leave `key` out to hash the arguments"
                    .into(),
            );
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, c)| c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|&(_, c)| c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => {
                    return Err(format!(
                        "unmatched `}}` at byte {at}; write `}}}}` for a literal brace"
                    ))
                }
                '{' => {
                    let mut inner = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '}')) => break,
                            Some((_, c)) => inner.push(c),
                            None => {
                                return Err(format!(
                                    "unclosed `{{` at byte {at}; close it with `}}`, or write `{{{{` for a literal brace"
                                ))
                            }
                        }
                    }
                    let path = placeholder(&inner)?;
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Placeholder(path));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// Whether the literal text starts with `__`: the runtime keeps its own
    /// keys there (`{prefix}:__tag:...`, `{prefix}:__wb:...`). A placeholder
    /// first is fine: the runtime escapes a value's leading `_`.
    pub(crate) fn reserved(&self) -> bool {
        matches!(self.parts.first(), Some(Part::Text(text)) if text.starts_with(RESERVED))
    }

    /// The characters a placeholder's value has percent-encoded, besides
    /// `%`, which always is: `:` and every other ASCII character but a
    /// letter or digit in the literal text, each once, in byte order. A
    /// value then never contains a separator of the template, so distinct
    /// values render distinct keys (with [`Template::unseparated`] ruled
    /// out). In a pattern (`glob`), the glob syntax is not key text: `*`,
    /// `?` and `[...]` classes are left out, and `\x` counts as `x`, so the
    /// pattern escapes a value as the key template it targets does.
    pub(crate) fn escaped(&self, glob: bool) -> String {
        let mut set = vec![b':'];
        for part in &self.parts {
            let Part::Text(text) = part else { continue };
            let mut bytes = text.bytes();
            while let Some(b) = bytes.next() {
                let literal = match b {
                    b'*' | b'?' if glob => None,
                    b'[' if glob => {
                        // A class: up to its `]` (a `]` first is a member).
                        let mut first = true;
                        for c in bytes.by_ref() {
                            if c == b']' && !first {
                                break;
                            }
                            first = c == b'^' && first;
                        }
                        None
                    }
                    b'\\' if glob => bytes.next(),
                    b => Some(b),
                };
                if let Some(b) = literal.filter(|b| b.is_ascii() && !b.is_ascii_alphanumeric()) {
                    set.push(b);
                }
            }
        }
        set.sort_unstable();
        set.dedup();
        set.retain(|&b| b != b'%');
        set.into_iter().map(char::from).collect()
    }

    /// The placeholders (by position among the placeholders) followed by
    /// another with nothing between them but letters, digits and non-ASCII
    /// characters, which a value may contain too: `{a}{b}` renders
    /// `("1", "23")` and `("12", "3")` alike, `{a}x{b}` renders `("1x", "2")`
    /// and `("1", "x2")` alike. A template with any is rejected.
    pub(crate) fn unseparated(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut index = 0;
        for (i, part) in self.parts.iter().enumerate() {
            let Part::Placeholder(_) = part else { continue };
            let separated = match self.parts.get(i + 1) {
                Some(Part::Text(text)) => {
                    text.bytes()
                        .any(|b| b.is_ascii() && !b.is_ascii_alphanumeric())
                        || !matches!(self.parts.get(i + 2), Some(Part::Placeholder(_)))
                }
                Some(Part::Placeholder(_)) => false,
                None => true,
            };
            if !separated {
                out.push(index);
            }
            index += 1;
        }
        out
    }

    /// The template as written, with `:` inserted after the placeholders
    /// listed (by position among the placeholders): the fix that
    /// [`Template::unseparated`] suggests.
    pub(crate) fn with_colon_after(&self, placeholders: &[usize]) -> String {
        let mut out = String::new();
        let mut index = 0;
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(&text.replace('{', "{{").replace('}', "}}")),
                Part::Placeholder(path) => {
                    out.push('{');
                    out.push_str(&path.join("."));
                    out.push('}');
                    if placeholders.contains(&index) {
                        out.push(':');
                    }
                    index += 1;
                }
            }
        }
        out
    }

    pub(crate) fn placeholders(&self) -> impl Iterator<Item = &[String]> {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(path) => Some(path.as_slice()),
            Part::Text(_) => None,
        })
    }
}

fn placeholder(inner: &str) -> Result<Vec<String>, String> {
    let trimmed = inner.trim();
    if trimmed.is_empty() {
        return Err("empty placeholder `{}`; name a parameter, e.g. `{id}`".into());
    }
    if trimmed.contains(':') {
        return Err(format!(
            "placeholder `{{{trimmed}}}` has a format spec; keys use `Display` only, write `{{{}}}`",
            trimmed.split(':').next().unwrap_or_default().trim()
        ));
    }
    let path: Vec<String> = trimmed.split('.').map(|s| s.trim().to_owned()).collect();
    for (i, seg) in path.iter().enumerate() {
        let ident_like = seg
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
            && seg.chars().all(|c| c.is_alphanumeric() || c == '_');
        let tuple_index = i > 0 && !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit());
        if !(ident_like || tuple_index) {
            return Err(format!(
                "placeholder `{{{trimmed}}}` is not a parameter or field path like `{{id}}` or `{{user.id}}`"
            ));
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ph(s: &str) -> Part {
        Part::Placeholder(s.split('.').map(str::to_owned).collect())
    }

    #[test]
    fn parses_text_placeholders_and_escapes() {
        let t = Template::parse("product:{id}").unwrap();
        assert_eq!(t.parts, vec![Part::Text("product:".into()), ph("id")]);
        let t = Template::parse("{{x}}:{user.id}:{self.tenant}:{pair.0}").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Text("{x}:".into()),
                ph("user.id"),
                Part::Text(":".into()),
                ph("self.tenant"),
                Part::Text(":".into()),
                ph("pair.0")
            ]
        );
        assert_eq!(
            Template::parse("plain").unwrap().parts,
            vec![Part::Text("plain".into())]
        );
    }

    #[test]
    fn reserved_start() {
        let reserved = |t: &str| Template::parse(t).unwrap().reserved();
        assert!(reserved("__tag:x") && reserved("__{id}") && reserved("___"));
        assert!(!reserved("_x:{id}") && !reserved("{id}:__x") && !reserved("x__"));
        // `{{` is a literal brace, not the start of `__`.
        assert!(!reserved("{{__}}") && !reserved("{a}__"));
    }

    #[test]
    fn escaped_set_is_the_literal_punctuation() {
        let escaped = |t: &str| Template::parse(t).unwrap().escaped(false);
        // `:`-only templates escape what they always did.
        assert_eq!(escaped("product:{id}"), ":");
        assert_eq!(escaped("{id}"), ":");
        assert_eq!(escaped("user{id}"), ":");
        assert_eq!(escaped("pair:{a}-{b}"), "-:");
        assert_eq!(escaped("v1.{a}_{b} {c}"), " .:_");
        // `%` always is, so it is not listed.
        assert_eq!(escaped("100%{a}:{b}"), ":");
        // Braces written `{{` are literal text.
        assert_eq!(escaped("{{x}}:{a}"), ":{}");
        // Non-ASCII is never escaped.
        assert_eq!(escaped("ż→{a}→{b}"), ":");
    }

    #[test]
    fn a_pattern_escapes_as_the_key_it_targets() {
        let pattern = |t: &str| Template::parse(t).unwrap().escaped(true);
        let key = |t: &str| Template::parse(t).unwrap().escaped(false);
        assert_eq!(pattern("pair:{a}-*"), key("pair:{a}-{b}"));
        assert_eq!(pattern("products:list:{category}:*"), ":");
        assert_eq!(pattern("p:{a}:?[a-z_]*"), ":", "glob syntax is no key text");
        assert_eq!(pattern("p:{a}:[]-]x"), ":", "a `]` first is in the class");
        assert_eq!(pattern("p:{a}\\*-*"), key("p:{a}*-{b}"));
    }

    #[test]
    fn unseparated_placeholders() {
        let unseparated = |t: &str| Template::parse(t).unwrap().unseparated();
        assert!(unseparated("pair:{a}:{b}").is_empty());
        assert!(unseparated("pair:{a}-{b}").is_empty());
        assert!(unseparated("{a}_x_{b}{{c}}").is_empty());
        assert_eq!(unseparated("{a}x{b}:"), [0]);
        assert_eq!(unseparated("{a}{b}"), [0]);
        assert_eq!(unseparated("k:{a}x{b}:{c}9{d}"), [0, 2]);
        assert_eq!(unseparated("k:{a}→{b}"), [0], "non-ASCII can be in a value");
        let t = Template::parse("k:{a}{b}x{c}:{{d}}").unwrap();
        assert_eq!(t.with_colon_after(&t.unseparated()), "k:{a}:{b}:x{c}:{{d}}");
    }

    #[test]
    fn rejects_malformed() {
        assert!(Template::parse("").unwrap_err().contains("empty"));
        assert!(Template::parse("a:{id").unwrap_err().contains("unclosed"));
        assert!(Template::parse("a:}").unwrap_err().contains("unmatched"));
        assert!(Template::parse("a:{}")
            .unwrap_err()
            .contains("empty placeholder"));
        assert!(Template::parse("a:{id:?}")
            .unwrap_err()
            .contains("format spec"));
        assert!(Template::parse("a:{1x}")
            .unwrap_err()
            .contains("not a parameter"));
        assert!(Template::parse("a:{a..b}")
            .unwrap_err()
            .contains("not a parameter"));
    }
}

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

//! Collecting every error before giving up, so the user sees them all at once.

#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// How many errors were pushed.
    pub(crate) fn len(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |all| all.clone().into_iter().count())
    }

    pub(crate) fn finish(self) -> Result<(), syn::Error> {
        self.0.map_or(Ok(()), Err)
    }
}

/// The closest of `candidates` to `word`, if it is a plausible typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // Between candidates as close, one of the same length wins: `keyz` is
    // more likely a mistyped `keys` than `key` with a letter added.
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|&(d, c)| d <= 2.min(c.len().saturating_sub(1)).max(1))
        .min_by_key(|&(d, c)| (d, c.len().abs_diff(word.len())))
        .map(|(_, c)| c)
}

/// Optimal string alignment distance (Levenshtein plus transpositions).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let opts = ["ttl", "key", "name", "skip", "cache", "crate", "cache_none"];
        assert_eq!(did_you_mean("tll", opts), Some("ttl"));
        assert_eq!(did_you_mean("kye", opts), Some("key"));
        assert_eq!(did_you_mean("cache_nones", opts), Some("cache_none"));
        assert_eq!(did_you_mean("skipp", opts), Some("skip"));
        assert_eq!(did_you_mean("zzzzzz", opts), None);
        let evict = ["key", "keys", "tags", "pattern", "before"];
        assert_eq!(did_you_mean("keyz", evict), Some("keys"));
        assert_eq!(did_you_mean("kye", evict), Some("key"));
        assert_eq!(did_you_mean("tag", evict), Some("tags"));
    }
}

//! The filter engine shared by every Describe action: `Filter.N.Name` / `Filter.N.Value.M` with
//! `*` and `?` wildcards (`\` escapes them), `tag:Key`, `tag-key` and `tag-value`.
//! Values of one filter are ORed, filters are ANDed, as in EC2.

use nimbus_core::Config;

use crate::{Error, Result, Tags};

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    pub name: String,
    #[serde(default)]
    pub values: Vec<String>,
}

/// One filter a type answers: its name, and the values an item has for it (the configuration
/// gives account-wide values such as `owner-id`).
pub type FilterField<T> = (&'static str, fn(&T, &Config) -> Vec<String>);

/// A type Describe actions filter. Names outside [`Filterable::FILTERS`] are refused, whether
/// or not any item exists, so a typo is an error rather than an empty answer.
pub trait Filterable: Sized + 'static {
    const FILTERS: &'static [FilterField<Self>];
}

/// Rejects filter names `T` does not know; `tag:Key`, `tag-key` and `tag-value` are known
/// when `tagged`.
pub fn validate_filters<T: Filterable>(filters: &[Filter], tagged: bool) -> Result<()> {
    for filter in filters {
        let is_tag_filter = filter.name.starts_with("tag:")
            || filter.name == "tag-key"
            || filter.name == "tag-value";
        let known = if is_tag_filter {
            tagged
        } else {
            T::FILTERS.iter().any(|(name, _)| *name == filter.name)
        };
        if !known {
            return Err(Error::UnknownFilter(filter.name.clone()));
        }
    }
    Ok(())
}

/// Whether `item` (with `tags`, if it carries any) passes every filter. Unknown names never
/// match (call [`validate_filters`] first).
pub fn matches<T: Filterable>(
    item: &T,
    tags: Option<&Tags>,
    filters: &[Filter],
    config: &Config,
) -> bool {
    filters.iter().all(|filter| {
        let matches_any = |value: &str| {
            filter
                .values
                .iter()
                .any(|pattern| wildcard_match(pattern, value))
        };
        // Tag filters read the tags in place: Describe runs them over every resource.
        match (filter.name.as_str(), tags) {
            ("tag-key", Some(tags)) => tags.keys().any(|key| matches_any(key)),
            ("tag-value", Some(tags)) => tags.values().any(|value| matches_any(value)),
            (name, Some(tags)) if name.starts_with("tag:") => {
                tags.get(&name[4..]).is_some_and(|value| matches_any(value))
            }
            (name, _) => T::FILTERS
                .iter()
                .find(|(field, _)| *field == name)
                .is_some_and(|(_, values)| values(item, config).iter().any(|v| matches_any(v))),
        }
    })
}

/// One element of a wildcard pattern.
#[derive(Clone, Copy, PartialEq)]
enum Token {
    Literal(char),
    AnyOne,
    AnyRun,
}

/// The token of `pattern` starting at byte `at`, and where the next one starts.
fn token_at(pattern: &str, at: usize) -> Option<(Token, usize)> {
    let mut chars = pattern[at..].chars();
    let c = chars.next()?;
    let token = match c {
        '\\' => Token::Literal(chars.next().unwrap_or('\\')),
        '*' => Token::AnyRun,
        '?' => Token::AnyOne,
        other => Token::Literal(other),
    };
    Some((token, pattern.len() - chars.as_str().len()))
}

/// EC2 wildcard matching: `*` matches any run of characters, `?` exactly one, `\` escapes.
/// It walks both strings in place (no allocation: Describe matches every resource).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains(['*', '?', '\\']) {
        return pattern == text;
    }
    // Greedy matching with backtracking to the last `*`: linear in practice, never exponential.
    // Positions are byte offsets of characters in `pattern` and `text`.
    let (mut t, mut p) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while let Some(c) = text[t..].chars().next() {
        match token_at(pattern, p) {
            Some((Token::AnyRun, next)) => {
                last_star = Some((next, t));
                p = next;
            }
            Some((Token::AnyOne, next)) => {
                t += c.len_utf8();
                p = next;
            }
            Some((Token::Literal(l), next)) if l == c => {
                t += c.len_utf8();
                p = next;
            }
            _ => match last_star {
                Some((after_star, star_t)) => {
                    let skipped = text[star_t..].chars().next().map_or(1, char::len_utf8);
                    p = after_star;
                    t = star_t + skipped;
                    last_star = Some((after_star, t));
                }
                None => return false,
            },
        }
    }
    let mut rest = p;
    while let Some((token, next)) = token_at(pattern, rest) {
        if token != Token::AnyRun {
            return false;
        }
        rest = next;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("abc", "abc"));
        assert!(!wildcard_match("abc", "abcd"));
        assert!(wildcard_match("a*", "abcd"));
        assert!(wildcard_match("*d", "abcd"));
        assert!(wildcard_match("a*c*", "abxxcyy"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("?", ""));
        assert!(wildcard_match("a\\*", "a*"));
        assert!(!wildcard_match("a\\*", "ab"));
        assert!(wildcard_match("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaab"));
        assert!(!wildcard_match("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaa"));
        // Characters of any width, escapes at the end, trailing stars.
        assert!(wildcard_match("é?ü*", "éßüxyz"));
        assert!(wildcard_match("*ß", "éßß"));
        assert!(!wildcard_match("é?", "é"));
        assert!(wildcard_match("a\\", "a\\"));
        assert!(wildcard_match("a**", "a"));
        assert!(!wildcard_match("a*?", "a"));
        assert!(wildcard_match("\\?\\*", "?*"));
    }

    struct Item;
    impl Filterable for Item {
        const FILTERS: &'static [FilterField<Self>] = &[("color", |_, _| vec!["red".to_owned()])];
    }

    fn filter(name: &str, values: &[&str]) -> Filter {
        Filter {
            name: name.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn filters_and_tags() {
        let config = Config::default();
        let tags: Tags = [("env".to_owned(), "prod".to_owned())].into();
        let tags = Some(&tags);
        assert!(matches(
            &Item,
            tags,
            &[filter("color", &["blue", "r*"])],
            &config
        ));
        assert!(matches(
            &Item,
            tags,
            &[filter("tag:env", &["prod"]), filter("tag-key", &["e?v"])],
            &config
        ));
        assert!(!matches(
            &Item,
            tags,
            &[filter("tag:env", &["dev"])],
            &config
        ));
        assert!(!matches(
            &Item,
            tags,
            &[filter("tag:other", &["*"])],
            &config
        ));
        assert!(matches(
            &Item,
            tags,
            &[filter("tag-value", &["pr*"])],
            &config
        ));
        assert!(validate_filters::<Item>(&[filter("shape", &["x"])], true).is_err());
        assert!(validate_filters::<Item>(&[filter("tag:anything", &["x"])], true).is_ok());
        assert!(validate_filters::<Item>(&[filter("tag:anything", &["x"])], false).is_err());
        assert!(validate_filters::<Item>(&[filter("color", &["x"])], false).is_ok());
    }
}

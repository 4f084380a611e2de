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
        resolve(item, tags, &filter.name, config).is_some_and(|values| {
            values.iter().any(|value| {
                filter
                    .values
                    .iter()
                    .any(|pattern| wildcard_match(pattern, value))
            })
        })
    })
}

fn resolve<T: Filterable>(
    item: &T,
    tags: Option<&Tags>,
    name: &str,
    config: &Config,
) -> Option<Vec<String>> {
    match (name, tags) {
        ("tag-key", Some(tags)) => Some(tags.keys().cloned().collect()),
        ("tag-value", Some(tags)) => Some(tags.values().cloned().collect()),
        (_, Some(tags)) if name.starts_with("tag:") => {
            Some(tags.get(&name[4..]).cloned().into_iter().collect())
        }
        _ => T::FILTERS
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, values)| values(item, config)),
    }
}

/// EC2 wildcard matching: `*` matches any run of characters, `?` exactly one, `\` escapes.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Token {
        Literal(char),
        AnyOne,
        AnyRun,
    }
    let mut tokens = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '\\' => Token::Literal(chars.next().unwrap_or('\\')),
            '*' => Token::AnyRun,
            '?' => Token::AnyOne,
            other => Token::Literal(other),
        });
    }
    let text: Vec<char> = text.chars().collect();
    // Greedy matching with backtracking to the last `*`: linear in practice, never exponential.
    let (mut t, mut p) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::AnyRun) => {
                last_star = Some((p, t));
                p += 1;
            }
            Some(Token::AnyOne) => {
                t += 1;
                p += 1;
            }
            Some(Token::Literal(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match last_star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    last_star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|token| *token == Token::AnyRun)
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

//! The filter engine shared by every Describe action: `Filter.N.Name` / `Filter.N.Value.M` with
//! `*` and `?` wildcards (`\` escapes them), `tag:Key`, `tag-key` and `tag-value`.
//! Values of one filter are ORed, filters are ANDed, as in EC2.

use crate::{Error, Result, Tags};

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    pub name: String,
    #[serde(default)]
    pub values: Vec<String>,
}

/// What a resource answers for a filter name: `None` means the name is not a filter of its type.
pub trait Filterable {
    fn filter_values(&self, name: &str) -> Option<Vec<String>>;
    fn tags(&self) -> Option<&Tags> {
        None
    }
}

/// Rejects filter names `sample` does not know, so a typo is an error rather than an empty answer.
pub fn validate_filters<T: Filterable>(filters: &[Filter], sample: &T) -> Result<()> {
    for filter in filters {
        if resolve(sample, &filter.name).is_none() {
            return Err(Error::InvalidParameterValue(format!(
                "The filter '{}' is invalid",
                filter.name
            )));
        }
    }
    Ok(())
}

/// Whether `item` passes every filter. Unknown names never match (call [`validate_filters`] first).
pub fn matches<T: Filterable>(item: &T, filters: &[Filter]) -> bool {
    filters
        .iter()
        .all(|filter| match resolve(item, &filter.name) {
            Some(values) => values.iter().any(|value| {
                filter
                    .values
                    .iter()
                    .any(|pattern| wildcard_match(pattern, value))
            }),
            None => false,
        })
}

fn resolve<T: Filterable>(item: &T, name: &str) -> Option<Vec<String>> {
    let tags = item.tags();
    match (name, tags) {
        ("tag-key", Some(tags)) => Some(tags.keys().cloned().collect()),
        ("tag-value", Some(tags)) => Some(tags.values().cloned().collect()),
        (_, Some(tags)) if name.starts_with("tag:") => {
            Some(tags.get(&name[4..]).cloned().into_iter().collect())
        }
        _ => item.filter_values(name),
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

    struct Item(Tags);
    impl Filterable for Item {
        fn filter_values(&self, name: &str) -> Option<Vec<String>> {
            (name == "color").then(|| vec!["red".to_owned()])
        }
        fn tags(&self) -> Option<&Tags> {
            Some(&self.0)
        }
    }

    fn filter(name: &str, values: &[&str]) -> Filter {
        Filter {
            name: name.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn filters_and_tags() {
        let item = Item([("env".to_owned(), "prod".to_owned())].into());
        assert!(matches(&item, &[filter("color", &["blue", "r*"])]));
        assert!(matches(
            &item,
            &[filter("tag:env", &["prod"]), filter("tag-key", &["e?v"])]
        ));
        assert!(!matches(&item, &[filter("tag:env", &["dev"])]));
        assert!(!matches(&item, &[filter("tag:other", &["*"])]));
        assert!(matches(&item, &[filter("tag-value", &["pr*"])]));
        assert!(validate_filters(&[filter("shape", &["x"])], &item).is_err());
        assert!(validate_filters(&[filter("tag:anything", &["x"])], &item).is_ok());
    }
}

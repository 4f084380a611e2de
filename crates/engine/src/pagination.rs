//! `MaxResults` / `NextToken` pagination over ID-sorted results.

use crate::{Error, Result};

/// Bounds of `MaxResults` for one action, as AWS documents them.
#[derive(Clone, Copy, Debug)]
pub struct PageBounds {
    pub min: i64,
    pub max: i64,
}

/// One page of `items` (already sorted by `key`), and the token for the next page.
/// The token is the hex-encoded key of the last item returned, so it stays valid while
/// other resources come and go.
pub fn paginate<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> &str,
    max_results: Option<i64>,
    next_token: Option<&str>,
    bounds: PageBounds,
) -> Result<(Vec<T>, Option<String>)> {
    let start_after = match next_token {
        Some(token) => Some(decode_token(token)?),
        None => None,
    };
    let limit = match max_results {
        Some(n) if n < bounds.min || n > bounds.max => {
            return Err(Error::MaxResultsOutOfRange {
                value: n,
                min: bounds.min,
                max: bounds.max,
            })
        }
        Some(n) => n as usize,
        None => usize::MAX,
    };
    let mut page: Vec<T> = items
        .into_iter()
        .filter(|item| start_after.as_deref().is_none_or(|after| key(item) > after))
        .take(limit.saturating_add(1))
        .collect();
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|item| hex::encode(key(item)))
    } else {
        None
    };
    Ok((page, next))
}

fn decode_token(token: &str) -> Result<String> {
    hex::decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(Error::InvalidPaginationToken(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_through_everything_once() {
        let items: Vec<String> = (0..23).map(|i| format!("id-{i:03}")).collect();
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let (page, next) = paginate(
                items.clone(),
                |s| s.as_str(),
                Some(5),
                token.as_deref(),
                PageBounds { min: 5, max: 1000 },
            )
            .expect("page");
            seen.extend(page);
            match next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn rejects_bad_bounds_and_tokens() {
        let bounds = || PageBounds { min: 5, max: 10 };
        assert!(paginate(vec!["a"], |s| s, Some(4), None, bounds()).is_err());
        assert!(paginate(vec!["a"], |s| s, Some(11), None, bounds()).is_err());
        assert!(matches!(
            paginate(vec!["a"], |s| s, None, Some("zz"), bounds()),
            Err(Error::InvalidPaginationToken(_))
        ));
    }
}

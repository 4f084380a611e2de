//! The one Describe every kind shares: IDs (checked for their form, then for existence),
//! filters (names checked whether or not anything exists), and `MaxResults`/`NextToken` pages
//! within the bounds AWS documents for the action.

use nimbus_core::Config;

use crate::filter::{self, Filter, Filterable};
use crate::pagination::{paginate, PageBounds};
use crate::{Error, Resource, Result, State};

/// One page of a Describe answer, and the token for the next page.
pub type Page<T> = (Vec<T>, Option<String>);

/// What every Describe action asks: its ID list, `Filters`, `MaxResults` and `NextToken`.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

/// How one Describe action pages, as AWS documents it.
#[derive(Clone, Copy, Debug)]
pub struct Paging {
    pub bounds: PageBounds,
    /// The wire name of the ID list when AWS refuses it together with `MaxResults`.
    pub ids_exclude_max_results: Option<&'static str>,
}

impl Paging {
    /// An action whose IDs and `MaxResults` may come together.
    pub const fn within(min: i64, max: i64) -> Paging {
        Paging {
            bounds: PageBounds { min, max },
            ids_exclude_max_results: None,
        }
    }

    /// An action without `MaxResults`: everything is one page.
    pub const UNPAGED: Paging = Paging::within(1, i64::MAX);

    /// An action that refuses its ID list (named `set`) together with `MaxResults`.
    pub const fn within_without_ids(min: i64, max: i64, set: &'static str) -> Paging {
        Paging {
            bounds: PageBounds { min, max },
            ids_exclude_max_results: Some(set),
        }
    }
}

/// The resource `id` of type `T`: a malformed ID and a missing one are told apart, as in EC2.
pub fn existing<'a, T: Resource>(state: &'a State, id: &str) -> Result<&'a T> {
    T::KIND.check_id(id)?;
    state
        .get::<T>(id)
        .ok_or_else(|| Error::not_found(T::KIND, id))
}

/// Describes resources of type `T` that pass `keep` as well as the query.
pub fn describe<T: Resource>(
    state: &State,
    config: &Config,
    query: &Query,
    paging: Paging,
    keep: impl Fn(&T) -> bool,
) -> Result<Page<T>> {
    filter::validate_filters::<T>(&query.filters, T::KIND.spec().taggable)?;
    check_combination(query, paging)?;
    for id in &query.ids {
        existing::<T>(state, id)?;
    }
    // Filter before cloning: a Describe usually keeps few of many resources.
    let rows = state
        .table::<T>()
        .values()
        .filter(|item| query.ids.is_empty() || query.ids.iter().any(|id| id == item.id()))
        .filter(|item| keep(item))
        .filter(|item| filter::matches(*item, item.tags(), &query.filters, config))
        .cloned()
        .collect();
    page(rows, T::id, query, paging)
}

/// Describes resources the caller gathered from more than their table (interfaces kept in
/// instance records too), tag filters included. The query's IDs are the caller's to honour.
pub fn describe_resources<T: Resource>(
    rows: Vec<T>,
    config: &Config,
    query: &Query,
    paging: Paging,
) -> Result<Page<T>> {
    filter::validate_filters::<T>(&query.filters, T::KIND.spec().taggable)?;
    check_combination(query, paging)?;
    let passing = rows
        .into_iter()
        .filter(|row| filter::matches(row, row.tags(), &query.filters, config))
        .collect();
    page(passing, T::id, query, paging)
}

/// Describes rows that are not stored resources (tags, modifications, catalog entries),
/// already selected by the caller and sorted by `key`. The query's IDs are the caller's to
/// honour.
pub fn describe_rows<T: Filterable>(
    rows: Vec<T>,
    key: fn(&T) -> &str,
    config: &Config,
    query: &Query,
    paging: Paging,
) -> Result<Page<T>> {
    filter::validate_filters::<T>(&query.filters, false)?;
    check_combination(query, paging)?;
    let passing = rows
        .into_iter()
        .filter(|row| filter::matches(row, None, &query.filters, config))
        .collect();
    page(passing, key, query, paging)
}

fn check_combination(query: &Query, paging: Paging) -> Result<()> {
    match paging.ids_exclude_max_results {
        Some(set) if !query.ids.is_empty() && query.max_results.is_some() => {
            Err(Error::IdsWithMaxResults(set))
        }
        _ => Ok(()),
    }
}

fn page<T>(rows: Vec<T>, key: fn(&T) -> &str, query: &Query, paging: Paging) -> Result<Page<T>> {
    paginate(
        rows,
        key,
        query.max_results,
        query.next_token.as_deref(),
        paging.bounds,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toy::{engine_with, widget, Widget};

    fn query(filters: &[(&str, &str)]) -> Query {
        Query {
            filters: filters
                .iter()
                .map(|(name, value)| Filter {
                    name: (*name).into(),
                    values: vec![(*value).into()],
                })
                .collect(),
            ..Query::default()
        }
    }

    const PAGING: Paging = Paging::within_without_ids(5, 1000, "keySet");

    #[test]
    fn unknown_filter_names_are_refused_on_an_empty_account() {
        let config = Config::default();
        for (engine, _) in [engine_with(0), engine_with(3)] {
            let state = engine.read();
            let error =
                describe::<Widget>(&state, &config, &query(&[("colour", "x")]), PAGING, |_| {
                    true
                });
            assert!(matches!(error, Err(Error::UnknownFilter(_))));
            let fine =
                describe::<Widget>(&state, &config, &query(&[("tag:n", "1")]), PAGING, |_| true);
            assert!(fine.is_ok());
        }
    }

    #[test]
    fn ids_are_checked_for_form_then_existence() {
        let (engine, _) = engine_with(2);
        let state = engine.read();
        let config = Config::default();
        let ask = |id: &str| Query {
            ids: vec![id.to_owned()],
            ..Query::default()
        };
        let malformed = describe::<Widget>(&state, &config, &ask("foo-missing"), PAGING, |_| true);
        assert!(matches!(malformed, Err(Error::MalformedId { .. })));
        let missing =
            describe::<Widget>(&state, &config, &ask(&widget(9).widget_id), PAGING, |_| {
                true
            });
        assert!(matches!(missing, Err(Error::NotFound { .. })));
        let (found, _) =
            describe::<Widget>(&state, &config, &ask(&widget(1).widget_id), PAGING, |_| {
                true
            })
            .expect("found");
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn pages_within_the_action_bounds() {
        let (engine, _) = engine_with(12);
        let state = engine.read();
        let config = Config::default();
        let mut query = query(&[("color", "red")]);
        query.max_results = Some(4);
        assert!(describe::<Widget>(&state, &config, &query, PAGING, |_| true).is_err());
        query.max_results = Some(5);
        let mut seen = 0;
        loop {
            let (page, next) =
                describe::<Widget>(&state, &config, &query, PAGING, |_| true).expect("page");
            seen += page.len();
            match next {
                Some(token) => query.next_token = Some(token),
                None => break,
            }
        }
        assert_eq!(seen, 6);
        query.ids = vec![widget(1).widget_id];
        assert!(matches!(
            describe::<Widget>(&state, &config, &query, PAGING, |_| true),
            Err(Error::IdsWithMaxResults("keySet"))
        ));
    }
}

//! DescribePrefixLists and DescribeManagedPrefixLists. nimbus has no VPC endpoints, so none
//! of the AWS-managed prefix lists (`com.amazonaws.<region>.s3`, …) exists, and it has no
//! CreateManagedPrefixList yet: both answer an empty set, after checking the request as AWS
//! does (filter names, page bounds, and the IDs asked for, which cannot exist).

use control::describe::{describe_rows, Paging, Query};
use control::filter::{FilterField, Filterable};
use serde_json::Value;

use super::{describe_request, page_output, Handler, NoOtherParameters, Output};
use crate::{ApiContext, ApiError};

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    ("DescribePrefixLists", Handler::Sync(describe_prefix_lists)),
    (
        "DescribeManagedPrefixLists",
        Handler::Sync(describe_managed_prefix_lists),
    ),
];

/// A prefix list, of which there are none yet; its filters are those AWS documents.
struct PrefixList {
    id: String,
}

impl Filterable for PrefixList {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("prefix-list-id", |p, _| vec![p.id.clone()]),
        ("prefix-list-name", |_, _| Vec::new()),
        ("owner-id", |_, _| Vec::new()),
    ];
}

/// The (empty) page a request asks for, once the request is checked.
fn none_of(context: &ApiContext, query: &Query, paging: Paging) -> Result<Vec<Value>, ApiError> {
    if let Some(id) = query.ids.first() {
        return Err(ApiError::bad_request(
            "InvalidPrefixListID.NotFound",
            format!("The prefix list ID '{id}' does not exist"),
        ));
    }
    describe_rows(
        Vec::<PrefixList>::new(),
        |p| &p.id,
        context.control.config(),
        query,
        paging,
    )?;
    Ok(Vec::new())
}

fn describe_prefix_lists(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, Some("PrefixListIds"))?;
    let lists = none_of(context, &query, Paging::within(5, 1000))?;
    Ok(page_output("PrefixLists", (lists, None), |list| list))
}

fn describe_managed_prefix_lists(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, Some("PrefixListIds"))?;
    let lists = none_of(context, &query, Paging::within(1, 100))?;
    Ok(page_output("PrefixLists", (lists, None), |list| list))
}

//! GetParametersByPath and DescribeParameters: parameters under a path or matching filters,
//! a page at a time (ordered by name).

use serde::Deserialize;
use serde_json::{json, Value};

use crate::kinds::Tables;
use crate::names;
use crate::parameters::{Parameter, ParameterVersion};
use crate::{public, Result, Ssm, SsmError};

/// The model's `ParameterStringFilter`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct StringFilter {
    key: String,
    option: Option<String>,
    #[serde(default)]
    values: Vec<String>,
}

/// The model's `ParametersFilter` (DescribeParameters' older `Filters`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LegacyFilter {
    key: String,
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GetParametersByPathInput {
    path: String,
    #[serde(default)]
    recursive: bool,
    #[serde(default)]
    parameter_filters: Vec<StringFilter>,
    /// No parameter is encrypted (SecureString is refused), so decryption changes nothing.
    #[serde(default, rename = "WithDecryption")]
    _with_decryption: bool,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeParametersInput {
    #[serde(default)]
    filters: Vec<LegacyFilter>,
    #[serde(default)]
    parameter_filters: Vec<StringFilter>,
    max_results: Option<i64>,
    next_token: Option<String>,
    /// Parameters other accounts share: nimbus has one account, so there are none.
    #[serde(default)]
    shared: bool,
}

/// How a `Name` filter compares.
#[derive(Clone, Copy, Debug, PartialEq)]
enum NameMatch {
    Equals,
    BeginsWith,
    Contains,
}

/// One filter, checked.
#[derive(Debug)]
enum Test {
    Name(NameMatch, Vec<String>),
    Path {
        recursive: bool,
        paths: Vec<String>,
    },
    Type(Vec<String>),
    /// Only SecureString parameters have keys, and nimbus has none.
    KeyId,
    Tier(Vec<String>),
    DataType(Vec<String>),
    /// Picks the version carrying one of the labels (GetParametersByPath only).
    Label(Vec<String>),
    /// `tag:<key>`: the key with one of the values, or with any value when none are given.
    Tag(String, Vec<String>),
    /// Parameter policies need the Advanced tier, which nimbus does not have: none match.
    Policies,
}

/// Where a filter is used: each action allows its own keys.
#[derive(Clone, Copy, PartialEq)]
enum Use {
    Describe,
    ByPath,
}

fn options_of(key: &str) -> &'static [&'static str] {
    match key {
        "Name" => &["Equals", "BeginsWith", "Contains"],
        "Path" => &["OneLevel", "Recursive"],
        _ => &["Equals"],
    }
}

fn check_values(key: &str, values: &[String], allowed: &[&str]) -> Result<()> {
    match values.iter().find(|v| !allowed.contains(&v.as_str())) {
        Some(bad) => Err(SsmError::InvalidFilterValue(format!(
            "The following filter value is not valid: {bad}. Valid values for {key} include: [{}].",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

fn parse(filter: &StringFilter, used: Use) -> Result<Test> {
    let key = filter.key.as_str();
    let tag = key.strip_prefix("tag:");
    let keys: &[&str] = match used {
        Use::Describe => &[
            "Name", "Path", "Type", "KeyId", "Tier", "DataType", "Policies",
        ],
        Use::ByPath => &["Type", "KeyId", "Label"],
    };
    if tag.is_none() && !keys.contains(&key) {
        return Err(SsmError::InvalidFilterKey(format!(
            "The following filter key is not valid: {key}. Valid filter keys include: [{}, tag:key].",
            keys.join(", ")
        )));
    }
    let options = options_of(key);
    let option = filter.option.as_deref().unwrap_or(options[0]);
    if !options.contains(&option) {
        return Err(SsmError::InvalidFilterOption(format!(
            "The following filter option is not valid: {option}. Valid options include: [{}].",
            options.join(", ")
        )));
    }
    if tag.is_none() && filter.values.is_empty() {
        return Err(SsmError::InvalidFilterValue(format!(
            "The filter {key} needs at least one value."
        )));
    }
    let values = filter.values.clone();
    Ok(match (key, tag) {
        (_, Some(tag)) => Test::Tag(tag.to_owned(), values),
        ("Name", _) => {
            let how = match option {
                "BeginsWith" => NameMatch::BeginsWith,
                "Contains" => NameMatch::Contains,
                _ => NameMatch::Equals,
            };
            Test::Name(how, values)
        }
        ("Path", _) => {
            let paths = (values.iter())
                .map(|path| names::check_path(path).map(str::to_owned))
                .collect::<Result<_>>()
                .map_err(|e| SsmError::InvalidFilterValue(e.to_string()))?;
            Test::Path {
                recursive: option == "Recursive",
                paths,
            }
        }
        ("Type", _) => {
            check_values(key, &values, &["String", "StringList", "SecureString"])?;
            Test::Type(values)
        }
        ("Tier", _) => {
            check_values(
                key,
                &values,
                &["Standard", "Advanced", "Intelligent-Tiering"],
            )?;
            Test::Tier(values)
        }
        ("DataType", _) => Test::DataType(values),
        ("Label", _) => Test::Label(values),
        ("Policies", _) => Test::Policies,
        _ => Test::KeyId,
    })
}

/// DescribeParameters' older `Filters`, as the equivalent `ParameterFilters`: `Name` matches
/// names that begin with a value.
fn from_legacy(filter: &LegacyFilter) -> Result<Test> {
    let option = (filter.key == "Name").then(|| "BeginsWith".to_owned());
    parse(
        &StringFilter {
            key: filter.key.clone(),
            option,
            values: filter.values.clone(),
        },
        Use::Describe,
    )
}

/// The version of `parameter` that passes every test (its current one, or the labelled one a
/// `Label` test picks), if any.
fn passes<'a>(parameter: &'a Parameter, tests: &[Test]) -> Option<&'a ParameterVersion> {
    let mut version = parameter.current();
    for test in tests {
        let name = parameter.name.as_str();
        let ok = match test {
            Test::Name(how, values) => values.iter().any(|value| {
                let wanted = value.as_str();
                match how {
                    NameMatch::Equals => name == wanted,
                    NameMatch::BeginsWith => name.starts_with(wanted),
                    NameMatch::Contains => name.contains(wanted),
                }
            }),
            Test::Path { recursive, paths } => paths
                .iter()
                .any(|path| names::is_under(name, path, *recursive)),
            Test::Type(values) => values.iter().any(|v| v == version.kind.as_str()),
            Test::KeyId | Test::Policies => false,
            Test::Tier(values) => values.iter().any(|v| v == "Standard"),
            Test::DataType(values) => values.iter().any(|v| v == version.data_type.as_str()),
            Test::Label(labels) => {
                match (parameter.versions.iter())
                    .find(|v| v.labels.iter().any(|l| labels.contains(l)))
                {
                    Some(labelled) => {
                        version = labelled;
                        true
                    }
                    None => false,
                }
            }
            Test::Tag(key, values) => parameter
                .tags
                .get(key)
                .is_some_and(|value| values.is_empty() || values.contains(value)),
        };
        if !ok {
            return None;
        }
    }
    Some(version)
}

/// One page of `rows` (each with the key it is ordered by) under `member`, `MaxResults` of
/// at most `max` (`max` when unset), with `NextToken` when more follow.
pub(crate) fn page_of(
    member: &str,
    mut rows: Vec<(String, Value)>,
    max_results: Option<i64>,
    next_token: Option<String>,
    max: i64,
) -> Result<Value> {
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = engine::pagination::paginate(
        rows,
        |(key, _)| key.as_str(),
        Some(max_results.unwrap_or(max)),
        next_token.as_deref(),
        engine::pagination::PageBounds { min: 1, max },
    )?;
    let rows: Vec<Value> = page.into_iter().map(|(_, row)| row).collect();
    let mut output = json!({ member: rows });
    if let Some(next) = next {
        output["NextToken"] = json!(next);
    }
    Ok(output)
}

impl Ssm {
    /// The parameters a listing reads: the public ones under `/aws/`, else the account's.
    fn listed(&self, public_path: bool) -> Vec<Parameter> {
        if public_path {
            public::all(self.images.as_ref())
        } else {
            self.engine.read().parameters().values().cloned().collect()
        }
    }

    pub fn get_parameters_by_path(&self, input: GetParametersByPathInput) -> Result<Value> {
        let path = names::check_path(&input.path)?;
        let mut tests = vec![Test::Path {
            recursive: input.recursive,
            paths: vec![path.to_owned()],
        }];
        for filter in &input.parameter_filters {
            tests.push(parse(filter, Use::ByPath)?);
        }
        let rows = (self.listed(public::is_public(&format!("{path}/"))).iter())
            .filter_map(|parameter| {
                let version = passes(parameter, &tests)?;
                let row = self.parameter_output(&parameter.name, version, None);
                Some((parameter.name.clone(), row))
            })
            .collect();
        page_of("Parameters", rows, input.max_results, input.next_token, 10)
    }

    pub fn describe_parameters(&self, input: DescribeParametersInput) -> Result<Value> {
        if !input.filters.is_empty() && !input.parameter_filters.is_empty() {
            return Err(SsmError::Validation(
                "You can use either Filters or ParameterFilters in a single request.".to_owned(),
            ));
        }
        let tests = (input.filters.iter().map(from_legacy))
            .chain(
                input
                    .parameter_filters
                    .iter()
                    .map(|f| parse(f, Use::Describe)),
            )
            .collect::<Result<Vec<Test>>>()?;
        let parameters = if input.shared {
            Vec::new()
        } else {
            self.listed(false)
        };
        let rows = (parameters.iter())
            .filter_map(|parameter| {
                let version = passes(parameter, &tests)?;
                let mut row = self.metadata_output(&parameter.name, version);
                row["ARN"] = json!(self.arn(&parameter.name));
                Some((parameter.name.clone(), row))
            })
            .collect();
        page_of("Parameters", rows, input.max_results, input.next_token, 50)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::service;

    fn setup() -> (tempfile::TempDir, Ssm) {
        let dir = tempfile::tempdir().expect("dir");
        let ssm = service(dir.path());
        for (name, kind) in [
            ("/app/a", "String"),
            ("/app/b", "StringList"),
            ("/app/deep/c", "String"),
            ("/other/d", "String"),
            ("plain", "String"),
        ] {
            let input = json!({"Name": name, "Value": "v", "Type": kind, "Tags": [{"Key": "team", "Value": name}]});
            let input = serde_json::from_value(input).expect("input");
            ssm.put_parameter(input, "me").expect("put");
        }
        (dir, ssm)
    }

    fn names_of(output: &Value) -> Vec<String> {
        (output["Parameters"].as_array().into_iter().flatten())
            .map(|p| p["Name"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn by_path(ssm: &Ssm, input: Value) -> Result<Value> {
        ssm.get_parameters_by_path(serde_json::from_value(input).expect("input"))
    }

    fn describe(ssm: &Ssm, input: Value) -> Result<Value> {
        ssm.describe_parameters(serde_json::from_value(input).expect("input"))
    }

    #[test]
    fn by_path_reads_one_level_or_all_of_them_a_page_at_a_time() {
        let (_dir, ssm) = setup();
        let one = by_path(&ssm, json!({"Path": "/app"})).expect("one level");
        assert_eq!(names_of(&one), ["/app/a", "/app/b"]);
        let all = by_path(&ssm, json!({"Path": "/app/", "Recursive": true})).expect("all");
        assert_eq!(names_of(&all), ["/app/a", "/app/b", "/app/deep/c"]);
        let first = by_path(
            &ssm,
            json!({"Path": "/app", "Recursive": true, "MaxResults": 2}),
        )
        .expect("p1");
        assert_eq!(names_of(&first), ["/app/a", "/app/b"]);
        let token = first["NextToken"].clone();
        let second = by_path(
            &ssm,
            json!({"Path": "/app", "Recursive": true, "NextToken": token}),
        )
        .expect("p2");
        assert_eq!(names_of(&second), ["/app/deep/c"]);
        assert!(second.get("NextToken").is_none());
        let lists = by_path(
            &ssm,
            json!({"Path": "/app", "ParameterFilters": [{"Key": "Type", "Values": ["StringList"]}]}),
        );
        assert_eq!(names_of(&lists.expect("typed")), ["/app/b"]);
        let refused = by_path(
            &ssm,
            json!({"Path": "/app", "ParameterFilters": [{"Key": "Name", "Values": ["x"]}]}),
        );
        assert!(
            matches!(refused, Err(SsmError::InvalidFilterKey(_))),
            "{refused:?}"
        );
        assert!(matches!(
            by_path(&ssm, json!({"Path": "app"})),
            Err(SsmError::Validation(_))
        ));
        let public = by_path(
            &ssm,
            json!({"Path": "/aws/service/ami-amazon-linux-latest"}),
        )
        .expect("public");
        assert!(names_of(&public)
            .iter()
            .all(|n| n.starts_with("/aws/service/ami-amazon-linux-latest/")));
        assert!(names_of(&public).len() >= 2);
    }

    #[test]
    fn by_path_with_a_label_reads_the_labelled_version() {
        let (_dir, ssm) = setup();
        let overwrite = json!({"Name": "/app/a", "Value": "new", "Overwrite": true});
        ssm.put_parameter(serde_json::from_value(overwrite).expect("in"), "me")
            .expect("v2");
        let label = json!({"Name": "/app/a", "ParameterVersion": 1, "Labels": ["stable"]});
        ssm.label_parameter_version(serde_json::from_value(label).expect("in"))
            .expect("label");
        let labelled = by_path(
            &ssm,
            json!({"Path": "/app", "ParameterFilters": [{"Key": "Label", "Values": ["stable"]}]}),
        )
        .expect("labelled");
        assert_eq!(names_of(&labelled), ["/app/a"]);
        assert_eq!(
            (
                labelled["Parameters"][0]["Value"].as_str(),
                labelled["Parameters"][0]["Version"].as_u64()
            ),
            (Some("v"), Some(1))
        );
    }

    #[test]
    fn describe_filters_by_name_path_type_and_tag() {
        let (_dir, ssm) = setup();
        let everything = describe(&ssm, json!({})).expect("all");
        assert_eq!(names_of(&everything).len(), 5);
        assert_eq!(everything["Parameters"][0]["Tier"], "Standard");
        let filter = |filters: Value| describe(&ssm, json!({ "ParameterFilters": filters }));
        let begins = filter(json!([{"Key": "Name", "Option": "BeginsWith", "Values": ["/app/"]}]));
        assert_eq!(
            names_of(&begins.expect("begins")),
            ["/app/a", "/app/b", "/app/deep/c"]
        );
        let contains = filter(json!([{"Key": "Name", "Option": "Contains", "Values": ["lai"]}]));
        assert_eq!(names_of(&contains.expect("contains")), ["plain"]);
        let path = filter(json!([{"Key": "Path", "Option": "Recursive", "Values": ["/other"]}]));
        assert_eq!(names_of(&path.expect("path")), ["/other/d"]);
        let tagged = filter(json!([{"Key": "tag:team", "Values": ["/app/b"]}]));
        assert_eq!(names_of(&tagged.expect("tag")), ["/app/b"]);
        let legacy = describe(
            &ssm,
            json!({"Filters": [{"Key": "Name", "Values": ["/app/d"]}]}),
        );
        assert_eq!(names_of(&legacy.expect("legacy")), ["/app/deep/c"]);
        let option = filter(json!([{"Key": "Type", "Option": "BeginsWith", "Values": ["String"]}]));
        assert!(
            matches!(option, Err(SsmError::InvalidFilterOption(_))),
            "{option:?}"
        );
        let both = describe(
            &ssm,
            json!({"Filters": [{"Key": "Type", "Values": ["String"]}], "ParameterFilters": [{"Key": "Type", "Values": ["String"]}]}),
        );
        assert!(matches!(both, Err(SsmError::Validation(_))));
        let bad_type = filter(json!([{"Key": "Type", "Values": ["Secret"]}]));
        assert!(matches!(bad_type, Err(SsmError::InvalidFilterValue(_))));
    }
}

//! Parameters and their versions: PutParameter, GetParameter(s), DeleteParameter(s),
//! GetParameterHistory, Label/UnlabelParameterVersion.
//!
//! A parameter is one record holding its versions in ascending order; the last one is the
//! current value. Version numbers only grow: when a parameter has 100 versions, a new one
//! drops the oldest, unless the oldest carries a label (then the write is refused, as AWS
//! does). A label names at most one version of its parameter.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::kinds::Tables;
use crate::names::{self, Selector};
use crate::{public, tagging, Result, Ssm, SsmError};

/// Versions a parameter keeps.
const MAX_VERSIONS: usize = 100;
/// Labels one version may carry.
const MAX_LABELS: usize = 10;
/// A Standard parameter's longest value.
const MAX_STANDARD_VALUE: usize = 4096;
/// Standard parameters an account may have in a region.
const MAX_PARAMETERS: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParameterKind {
    String,
    StringList,
}

impl ParameterKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ParameterKind::String => "String",
            ParameterKind::StringList => "StringList",
        }
    }

    /// `Type` of a request: SecureString waits for encryption.
    fn parse(text: &str) -> Result<ParameterKind> {
        match text {
            "String" => Ok(ParameterKind::String),
            "StringList" => Ok(ParameterKind::StringList),
            "SecureString" => Err(SsmError::Unsupported(
                "The parameter Type=SecureString is not supported by nimbus: it has no KMS to encrypt with yet.".to_owned(),
            )),
            other => Err(SsmError::Validation(format!(
                "The parameter type {other} is not valid."
            ))),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataType {
    /// `text`: any value.
    Text,
    /// `aws:ec2:image`: the ID of an image of the account.
    Ec2Image,
}

impl DataType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DataType::Text => "text",
            DataType::Ec2Image => "aws:ec2:image",
        }
    }

    fn parse(text: &str) -> Result<DataType> {
        match text {
            "text" => Ok(DataType::Text),
            "aws:ec2:image" => Ok(DataType::Ec2Image),
            other => Err(SsmError::Validation(format!(
                "The following data type is not supported: {other} (supported data types are: text, aws:ec2:image)."
            ))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParameterVersion {
    pub version: u64,
    pub kind: ParameterKind,
    pub value: String,
    pub description: Option<String>,
    pub allowed_pattern: Option<String>,
    pub data_type: DataType,
    /// Unix milliseconds.
    pub last_modified: i64,
    /// The ARN of the caller who wrote it; empty for public parameters.
    pub last_modified_user: String,
    pub labels: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    /// In ascending order of version; the last is the current one.
    pub versions: Vec<ParameterVersion>,
    pub tags: engine::Tags,
}

impl Parameter {
    pub fn current(&self) -> &ParameterVersion {
        // A record always holds at least one version: PutParameter makes it with its first.
        &self.versions[self.versions.len() - 1]
    }

    /// The version `selector` picks.
    pub fn select(&self, selector: &Selector) -> Result<&ParameterVersion> {
        let found = match selector {
            Selector::Current => Some(self.current()),
            Selector::Version(number) => self.versions.iter().find(|v| v.version == *number),
            Selector::Label(label) => self.versions.iter().find(|v| v.labels.contains(label)),
        };
        found.ok_or_else(|| {
            let which = match selector {
                Selector::Label(label) => format!("label {label}"),
                Selector::Version(number) => format!("version {number}"),
                Selector::Current => "a version".to_owned(),
            };
            SsmError::ParameterVersionNotFound(format!(
                "Systems Manager could not find {which} of {}. Verify the version and try again.",
                self.name
            ))
        })
    }
}

/// The value of a parameter EC2 reads as an image ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageAlias {
    pub image_id: String,
    /// The parameter says it holds an image: its data type is `aws:ec2:image`, or it is one
    /// of the public image parameters (launch templates take no other).
    pub holds_image: bool,
}

/// A tag as the model's `Tag`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PutParameterInput {
    name: String,
    description: Option<String>,
    value: String,
    #[serde(rename = "Type")]
    kind: Option<String>,
    key_id: Option<String>,
    #[serde(default)]
    overwrite: bool,
    allowed_pattern: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    tier: Option<String>,
    policies: Option<String>,
    data_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GetParameterInput {
    name: String,
    /// No parameter is encrypted (SecureString is refused), so decryption changes nothing.
    #[serde(default, rename = "WithDecryption")]
    _with_decryption: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct NamesInput {
    names: Vec<String>,
    /// As in [`GetParameterInput`].
    #[serde(default, rename = "WithDecryption")]
    _with_decryption: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DeleteParameterInput {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GetParameterHistoryInput {
    name: String,
    /// As in [`GetParameterInput`].
    #[serde(default, rename = "WithDecryption")]
    _with_decryption: bool,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LabelParameterVersionInput {
    name: String,
    parameter_version: Option<u64>,
    labels: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UnlabelParameterVersionInput {
    name: String,
    parameter_version: u64,
    labels: Vec<String>,
}

/// Refuses a value that breaks `pattern` (a Java-style regular expression that must match the
/// whole value), or a pattern that is not a regular expression.
fn check_pattern(pattern: &str, value: &str) -> Result<()> {
    let whole = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        SsmError::InvalidAllowedPattern(format!(
            "The allowed pattern {pattern} is not a valid regular expression: {e}"
        ))
    })?;
    if whole.is_match(value) {
        Ok(())
    } else {
        Err(SsmError::ParameterPatternMismatch(pattern.to_owned()))
    }
}

/// An `aws:ec2:image` value: the ID of an image the account has (AWS checks this after it
/// answers and drops the parameter; nimbus refuses at once, see docs/ssm.md).
fn check_image(ssm: &Ssm, kind: ParameterKind, value: &str) -> Result<()> {
    if kind != ParameterKind::String {
        return Err(SsmError::Validation(
            "The aws:ec2:image data type is only valid for String parameters.".to_owned(),
        ));
    }
    let hex = value.strip_prefix("ami-").unwrap_or_default();
    let well_formed = matches!(hex.len(), 8 | 17)
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return Err(SsmError::Validation(format!(
            "Parameter value {value} is not in the format ami-12345abcdeEXAMPLE required by the aws:ec2:image data type."
        )));
    }
    if !ssm.images.exists(value) {
        return Err(SsmError::Validation(format!(
            "The image {value} does not exist, so it cannot be the value of an aws:ec2:image parameter."
        )));
    }
    Ok(())
}

/// What a Put request asks for besides its name, read and checked before the transaction.
struct Requested {
    kind: Option<ParameterKind>,
    data_type: Option<DataType>,
}

fn read_request(input: &PutParameterInput) -> Result<Requested> {
    names::check_writable(&input.name)?;
    if input.key_id.is_some() {
        return Err(SsmError::Unsupported(
            "The parameter KeyId is not supported by nimbus: there are no SecureString parameters yet.".to_owned(),
        ));
    }
    if input.policies.is_some() {
        return Err(SsmError::Unsupported(
            "The parameter Policies is not supported by nimbus: parameter policies need the Advanced tier.".to_owned(),
        ));
    }
    match input.tier.as_deref() {
        None | Some("Standard") | Some("Intelligent-Tiering") => {}
        Some("Advanced") => {
            return Err(SsmError::Unsupported(
                "The parameter Tier=Advanced is not supported by nimbus: parameters are Standard."
                    .to_owned(),
            ))
        }
        Some(other) => {
            return Err(SsmError::Validation(format!(
                "The tier {other} is not valid."
            )))
        }
    }
    if input.value.is_empty() {
        return Err(SsmError::Validation(
            "1 validation error detected: Value '' at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1.".to_owned(),
        ));
    }
    // Intelligent-Tiering picks Standard for every value that fits it.
    if input.value.chars().count() > MAX_STANDARD_VALUE {
        return Err(SsmError::Validation(format!(
            "Standard tier parameters support a maximum parameter value of {MAX_STANDARD_VALUE} characters."
        )));
    }
    Ok(Requested {
        kind: input
            .kind
            .as_deref()
            .map(ParameterKind::parse)
            .transpose()?,
        data_type: input
            .data_type
            .as_deref()
            .map(DataType::parse)
            .transpose()?,
    })
}

/// The account's parameter `name`, as a transaction sees it.
fn stored(txn: &engine::Txn, name: &str) -> Result<Parameter> {
    (txn.state().parameters().get(name).cloned())
        .ok_or_else(|| SsmError::ParameterNotFound(name.to_owned()))
}

impl Ssm {
    /// The parameter `name`: the account's own, else a public one.
    pub(crate) fn lookup(&self, name: &str) -> Option<Parameter> {
        if public::is_public(name) {
            return public::lookup(self.images.as_ref(), name);
        }
        self.engine.read().parameters().get(name).cloned()
    }

    /// One version as the model's `Parameter`; `selector` is echoed when the request gave one.
    pub(crate) fn parameter_output(
        &self,
        name: &str,
        version: &ParameterVersion,
        selector: Option<&str>,
    ) -> Value {
        let mut output = json!({
            "Name": name,
            "Type": version.kind.as_str(),
            "Value": version.value,
            "Version": version.version,
            "LastModifiedDate": nimbus_core::iso8601_millis(version.last_modified),
            "ARN": self.arn(name),
            "DataType": version.data_type.as_str(),
        });
        if let Some(selector) = selector {
            output["Selector"] = json!(selector);
        }
        output
    }

    /// The parts of the model's `ParameterMetadata` and `ParameterHistory` both carry.
    pub(crate) fn metadata_output(&self, name: &str, version: &ParameterVersion) -> Value {
        let mut output = json!({
            "Name": name,
            "Type": version.kind.as_str(),
            "LastModifiedDate": nimbus_core::iso8601_millis(version.last_modified),
            "Version": version.version,
            "Tier": "Standard",
            "Policies": [],
            "DataType": version.data_type.as_str(),
        });
        if !version.last_modified_user.is_empty() {
            output["LastModifiedUser"] = json!(version.last_modified_user);
        }
        if let Some(description) = &version.description {
            output["Description"] = json!(description);
        }
        if let Some(pattern) = &version.allowed_pattern {
            output["AllowedPattern"] = json!(pattern);
        }
        output
    }

    /// PutParameter: a new parameter, or with `Overwrite` a new version of one. Members left
    /// out of an overwrite (type, description, pattern, data type) keep their values.
    pub fn put_parameter(&self, input: PutParameterInput, user: &str) -> Result<Value> {
        let requested = read_request(&input)?;
        let new_tags = tagging::tags_of(&input.tags)?;
        let version = self.engine.mutate(|txn| {
            let existing = txn.state().parameters().get(&input.name).cloned();
            if existing.is_some() && !input.overwrite {
                return Err(SsmError::ParameterAlreadyExists);
            }
            if existing.is_some() && !input.tags.is_empty() {
                return Err(SsmError::Validation(
                    "Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or RemoveTagsFromResource.".to_owned(),
                ));
            }
            if existing.is_none() && txn.state().parameters().len() >= MAX_PARAMETERS {
                return Err(SsmError::ParameterLimitExceeded(format!(
                    "You have reached the limit of {MAX_PARAMETERS} Standard parameters."
                )));
            }
            let previous = existing.as_ref().map(Parameter::current);
            let kind = match (requested.kind, previous) {
                (Some(kind), _) => kind,
                (None, Some(previous)) => previous.kind,
                (None, None) => {
                    return Err(SsmError::Validation(
                        "A parameter type is required when you create a parameter.".to_owned(),
                    ))
                }
            };
            let kept = |field: fn(&ParameterVersion) -> Option<String>| previous.and_then(field);
            let description = input.description.clone().or_else(|| kept(|v| v.description.clone()));
            let allowed_pattern =
                (input.allowed_pattern.clone()).or_else(|| kept(|v| v.allowed_pattern.clone()));
            let data_type = requested
                .data_type
                .or(previous.map(|v| v.data_type))
                .unwrap_or(DataType::Text);
            if let Some(pattern) = &allowed_pattern {
                check_pattern(pattern, &input.value)?;
            }
            if data_type == DataType::Ec2Image {
                check_image(self, kind, &input.value)?;
            }
            let mut parameter = existing.unwrap_or_else(|| Parameter {
                name: input.name.clone(),
                versions: Vec::new(),
                tags: new_tags.clone(),
            });
            if parameter.versions.len() >= MAX_VERSIONS {
                if !parameter.versions[0].labels.is_empty() {
                    return Err(SsmError::ParameterMaxVersionLimitExceeded(format!(
                        "You attempted to create a new version of {} by calling the PutParameter API with the overwrite flag. Version {}, the oldest version, can't be deleted because it has a label associated with it. Move the label to another version of the parameter, and try again.",
                        input.name, parameter.versions[0].version
                    )));
                }
                parameter.versions.remove(0);
            }
            let number = parameter.versions.last().map_or(1, |v| v.version + 1);
            parameter.versions.push(ParameterVersion {
                version: number,
                kind,
                value: input.value.clone(),
                description,
                allowed_pattern,
                data_type,
                last_modified: nimbus_core::now_millis(),
                last_modified_user: user.to_owned(),
                labels: Vec::new(),
            });
            txn.put(parameter)?;
            Ok(number)
        })?;
        Ok(json!({ "Version": version, "Tier": "Standard" }))
    }

    /// The version `requested` (`name`, `name:3` or `name:label`) picks, with the selector.
    fn resolve(&self, requested: &str) -> Result<(Parameter, ParameterVersion, Option<String>)> {
        let (name, selector) = names::parse_selector(requested)?;
        let parameter = self
            .lookup(name)
            .ok_or_else(|| SsmError::ParameterNotFound(name.to_owned()))?;
        let version = parameter.select(&selector)?.clone();
        let shown = (selector != Selector::Current).then(|| requested[name.len()..].to_owned());
        Ok((parameter, version, shown))
    }

    pub fn get_parameter(&self, input: GetParameterInput) -> Result<Value> {
        let (parameter, version, selector) = self.resolve(&input.name)?;
        let output = self.parameter_output(&parameter.name, &version, selector.as_deref());
        Ok(json!({ "Parameter": output }))
    }

    /// What EC2's image alias `resolve:ssm:<requested>` stands for (`requested` may carry a
    /// selector).
    pub fn image_alias(&self, requested: &str) -> Result<ImageAlias> {
        let (parameter, version, _) = self.resolve(requested)?;
        Ok(ImageAlias {
            holds_image: version.data_type == DataType::Ec2Image
                || public::is_public(&parameter.name),
            image_id: version.value,
        })
    }

    /// GetParameters: the names found (each once, in the order asked) and those not found.
    pub fn get_parameters(&self, input: NamesInput) -> Result<Value> {
        let mut found = Vec::new();
        let mut invalid: Vec<&str> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for requested in input.names.iter().filter(|n| seen.insert(n.as_str())) {
            match self.resolve(requested) {
                Ok((parameter, version, selector)) => found.push(self.parameter_output(
                    &parameter.name,
                    &version,
                    selector.as_deref(),
                )),
                Err(SsmError::Validation(message)) => return Err(SsmError::Validation(message)),
                Err(_) => invalid.push(requested),
            }
        }
        Ok(json!({ "Parameters": found, "InvalidParameters": invalid }))
    }

    pub fn delete_parameter(&self, input: DeleteParameterInput) -> Result<Value> {
        names::check_writable(&input.name)?;
        self.engine.mutate(|txn| {
            if txn.state().parameters().get(&input.name).is_none() {
                return Err(SsmError::ParameterNotFound(input.name.clone()));
            }
            txn.delete::<Parameter>(&input.name);
            Ok(())
        })?;
        Ok(json!({}))
    }

    /// DeleteParameters: deletes those that exist, in one transaction; the rest are invalid.
    pub fn delete_parameters(&self, input: NamesInput) -> Result<Value> {
        let (deleted, invalid) = self.engine.mutate(|txn| {
            let mut deleted = Vec::new();
            let mut invalid = Vec::new();
            for name in &input.names {
                let writable = names::check_writable(name).is_ok();
                if writable && txn.state().parameters().get(name).is_some() {
                    txn.delete::<Parameter>(name);
                    deleted.push(name.clone());
                } else if !deleted.contains(name) {
                    invalid.push(name.clone());
                }
            }
            Ok::<_, SsmError>((deleted, invalid))
        })?;
        Ok(json!({ "DeletedParameters": deleted, "InvalidParameters": invalid }))
    }

    /// GetParameterHistory: every version kept, oldest first, with their labels.
    pub fn get_parameter_history(&self, input: GetParameterHistoryInput) -> Result<Value> {
        names::check_name(&input.name)?;
        let parameter = self
            .lookup(&input.name)
            .ok_or_else(|| SsmError::ParameterNotFound(input.name.clone()))?;
        let rows: Vec<(String, Value)> = (parameter.versions.iter())
            .map(|version| {
                let mut row = self.metadata_output(&parameter.name, version);
                row["Value"] = json!(version.value);
                row["Labels"] = json!(version.labels);
                (format!("{:020}", version.version), row)
            })
            .collect();
        crate::listing::page_of("Parameters", rows, input.max_results, input.next_token, 50)
    }

    /// LabelParameterVersion: moves each valid label to the version (the current one by
    /// default); invalid labels are answered, not applied.
    pub fn label_parameter_version(&self, input: LabelParameterVersionInput) -> Result<Value> {
        names::check_writable(&input.name)?;
        let (valid, invalid): (Vec<String>, Vec<String>) =
            (input.labels.iter().cloned()).partition(|label| names::check_label(label).is_ok());
        let number = self.engine.mutate(|txn| {
            let mut parameter = stored(txn, &input.name)?;
            let selector = input
                .parameter_version
                .map_or(Selector::Current, Selector::Version);
            let number = parameter.select(&selector)?.version;
            for version in &mut parameter.versions {
                if version.version == number {
                    for label in &valid {
                        if !version.labels.contains(label) {
                            version.labels.push(label.clone());
                        }
                    }
                    if version.labels.len() > MAX_LABELS {
                        return Err(SsmError::ParameterVersionLabelLimitExceeded(format!(
                            "A parameter version can have maximum {MAX_LABELS} labels. Move one or more labels to another version and try again."
                        )));
                    }
                } else {
                    version.labels.retain(|label| !valid.contains(label));
                }
            }
            txn.put(parameter)?;
            Ok::<_, SsmError>(number)
        })?;
        Ok(json!({ "InvalidLabels": invalid, "ParameterVersion": number }))
    }

    /// UnlabelParameterVersion: removes the labels the version carries; the others are
    /// answered as invalid.
    pub fn unlabel_parameter_version(&self, input: UnlabelParameterVersionInput) -> Result<Value> {
        names::check_writable(&input.name)?;
        let (removed, invalid) = self.engine.mutate(|txn| {
            let mut parameter = stored(txn, &input.name)?;
            let number = parameter
                .select(&Selector::Version(input.parameter_version))?
                .version;
            let version = (parameter.versions.iter_mut())
                .find(|v| v.version == number)
                .ok_or_else(|| SsmError::Storage("a selected version vanished".to_owned()))?;
            let (removed, invalid): (Vec<String>, Vec<String>) =
                (input.labels.iter().cloned()).partition(|label| version.labels.contains(label));
            version.labels.retain(|label| !removed.contains(label));
            if !removed.is_empty() {
                txn.put(parameter)?;
            }
            Ok::<_, SsmError>((removed, invalid))
        })?;
        Ok(json!({ "RemovedLabels": removed, "InvalidLabels": invalid }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::service;

    const USER: &str = "arn:aws:iam::000000000000:root";

    fn put(ssm: &Ssm, input: Value) -> Result<Value> {
        ssm.put_parameter(serde_json::from_value(input).expect("input"), USER)
    }

    fn get(ssm: &Ssm, name: &str) -> Result<Value> {
        ssm.get_parameter(serde_json::from_value(json!({ "Name": name })).expect("input"))
    }

    #[test]
    fn versions_grow_and_selectors_pick_them() {
        let dir = tempfile::tempdir().expect("dir");
        let ssm = service(dir.path());
        let first = put(
            &ssm,
            json!({"Name": "/app/url", "Value": "a", "Type": "String", "Description": "d"}),
        );
        assert_eq!(first.expect("put")["Version"], 1);
        let again = put(
            &ssm,
            json!({"Name": "/app/url", "Value": "b", "Type": "String"}),
        );
        assert!(
            matches!(again, Err(SsmError::ParameterAlreadyExists)),
            "{again:?}"
        );
        let second = put(
            &ssm,
            json!({"Name": "/app/url", "Value": "b", "Overwrite": true}),
        );
        assert_eq!(second.expect("overwrite")["Version"], 2);
        let current = get(&ssm, "/app/url").expect("get")["Parameter"].clone();
        assert_eq!(
            (current["Value"].as_str(), current["Version"].as_u64()),
            (Some("b"), Some(2))
        );
        assert_eq!(
            current["ARN"],
            "arn:aws:ssm:us-east-1:000000000000:parameter/app/url"
        );
        let old = get(&ssm, "/app/url:1").expect("v1")["Parameter"].clone();
        assert_eq!(
            (old["Value"].as_str(), old["Selector"].as_str()),
            (Some("a"), Some(":1"))
        );
        assert!(matches!(
            get(&ssm, "/app/url:3"),
            Err(SsmError::ParameterVersionNotFound(_))
        ));
        assert!(matches!(
            get(&ssm, "/app/none"),
            Err(SsmError::ParameterNotFound(_))
        ));
        let history = ssm
            .get_parameter_history(serde_json::from_value(json!({"Name": "/app/url"})).expect("in"))
            .expect("history");
        let descriptions: Vec<&str> = (history["Parameters"].as_array().expect("list").iter())
            .map(|v| v["Description"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            descriptions,
            ["d", "d"],
            "an overwrite keeps the description"
        );
    }

    #[test]
    fn labels_move_between_versions_and_select_them() {
        let dir = tempfile::tempdir().expect("dir");
        let ssm = service(dir.path());
        put(&ssm, json!({"Name": "p", "Value": "one", "Type": "String"})).expect("v1");
        put(
            &ssm,
            json!({"Name": "p", "Value": "two", "Overwrite": true}),
        )
        .expect("v2");
        let label = |version: u64, labels: Value| {
            let input = json!({"Name": "p", "ParameterVersion": version, "Labels": labels});
            ssm.label_parameter_version(serde_json::from_value(input).expect("in"))
        };
        let answer = label(1, json!(["prod", "1bad"])).expect("label");
        assert_eq!(answer["InvalidLabels"], json!(["1bad"]));
        assert_eq!(
            get(&ssm, "p:prod").expect("prod")["Parameter"]["Value"],
            "one"
        );
        label(2, json!(["prod"])).expect("move");
        assert_eq!(
            get(&ssm, "p:prod").expect("prod")["Parameter"]["Value"],
            "two"
        );
        let unlabel = json!({"Name": "p", "ParameterVersion": 2, "Labels": ["prod", "other"]});
        let answer = ssm
            .unlabel_parameter_version(serde_json::from_value(unlabel).expect("in"))
            .expect("unlabel");
        assert_eq!(
            (
                answer["RemovedLabels"].clone(),
                answer["InvalidLabels"].clone()
            ),
            (json!(["prod"]), json!(["other"]))
        );
        assert!(matches!(
            get(&ssm, "p:prod"),
            Err(SsmError::ParameterVersionNotFound(_))
        ));
    }

    #[test]
    fn the_hundred_and_first_version_drops_the_oldest_unless_it_is_labelled() {
        let dir = tempfile::tempdir().expect("dir");
        let ssm = service(dir.path());
        put(&ssm, json!({"Name": "n", "Value": "0", "Type": "String"})).expect("v1");
        for i in 1..100 {
            put(
                &ssm,
                json!({"Name": "n", "Value": i.to_string(), "Overwrite": true}),
            )
            .expect("v");
        }
        let labelled = json!({"Name": "n", "ParameterVersion": 1, "Labels": ["keep"]});
        ssm.label_parameter_version(serde_json::from_value(labelled).expect("in"))
            .expect("label");
        let refused = put(&ssm, json!({"Name": "n", "Value": "x", "Overwrite": true}));
        assert!(
            matches!(refused, Err(SsmError::ParameterMaxVersionLimitExceeded(_))),
            "{refused:?}"
        );
        let unlabel = json!({"Name": "n", "ParameterVersion": 1, "Labels": ["keep"]});
        ssm.unlabel_parameter_version(serde_json::from_value(unlabel).expect("in"))
            .expect("unlabel");
        let written =
            put(&ssm, json!({"Name": "n", "Value": "x", "Overwrite": true})).expect("v101");
        assert_eq!(written["Version"], 101);
        assert!(matches!(
            get(&ssm, "n:1"),
            Err(SsmError::ParameterVersionNotFound(_))
        ));
        assert_eq!(get(&ssm, "n:2").expect("v2")["Parameter"]["Value"], "1");
    }

    #[test]
    fn values_are_checked_against_patterns_types_and_images() {
        let dir = tempfile::tempdir().expect("dir");
        let ssm = service(dir.path());
        let digits =
            json!({"Name": "port", "Value": "80a", "Type": "String", "AllowedPattern": "\\d+"});
        assert!(matches!(
            put(&ssm, digits),
            Err(SsmError::ParameterPatternMismatch(_))
        ));
        let broken =
            json!({"Name": "port", "Value": "80", "Type": "String", "AllowedPattern": "("});
        assert!(matches!(
            put(&ssm, broken),
            Err(SsmError::InvalidAllowedPattern(_))
        ));
        put(
            &ssm,
            json!({"Name": "port", "Value": "80", "Type": "String", "AllowedPattern": "\\d+"}),
        )
        .expect("matches");
        let kept = put(
            &ssm,
            json!({"Name": "port", "Value": "http", "Overwrite": true}),
        );
        assert!(
            matches!(kept, Err(SsmError::ParameterPatternMismatch(_))),
            "the pattern stays"
        );
        let secure = json!({"Name": "s", "Value": "v", "Type": "SecureString"});
        assert!(
            matches!(put(&ssm, secure), Err(SsmError::Unsupported(m)) if m.contains("SecureString"))
        );
        let untyped = put(&ssm, json!({"Name": "new", "Value": "v"}));
        assert!(
            matches!(untyped, Err(SsmError::Validation(_))),
            "{untyped:?}"
        );
        let image = |value: &str| {
            put(
                &ssm,
                json!({"Name": "/ami/web", "Value": value, "Type": "String", "DataType": "aws:ec2:image", "Overwrite": true}),
            )
        };
        assert!(matches!(image("ubuntu"), Err(SsmError::Validation(_))));
        assert!(
            matches!(image("ami-0123456789abcdef0"), Err(SsmError::Validation(m)) if m.contains("does not exist"))
        );
        image("ami-00000000000000001").expect("an image the account has");
        let reserved = put(
            &ssm,
            json!({"Name": "/aws/service/x", "Value": "v", "Type": "String"}),
        );
        assert!(matches!(reserved, Err(SsmError::AccessDenied(_))));
        let tagged = json!({"Name": "port", "Value": "81", "Overwrite": true, "Tags": [{"Key": "k", "Value": "v"}]});
        assert!(matches!(put(&ssm, tagged), Err(SsmError::Validation(_))));
    }

    #[test]
    fn public_parameters_name_nimbus_images_and_are_read_only() {
        let dir = tempfile::tempdir().expect("dir");
        let ssm = service(dir.path());
        let name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";
        let parameter = get(&ssm, name).expect("public")["Parameter"].clone();
        assert_eq!(parameter["Value"], "ami-00000000000000001");
        assert_eq!(
            parameter["ARN"],
            format!("arn:aws:ssm:us-east-1::parameter{name}")
        );
        let alias = ssm.image_alias(&format!("{name}:1")).expect("v1");
        assert_eq!(
            (alias.image_id.as_str(), alias.holds_image),
            ("ami-00000000000000001", true)
        );
        // debian-12 is not built here: its aliases do not exist.
        assert!(matches!(
            get(&ssm, "/aws/service/debian/release/12/latest/amd64"),
            Err(SsmError::ParameterNotFound(_))
        ));
        let delete =
            ssm.delete_parameter(serde_json::from_value(json!({"Name": name})).expect("in"));
        assert!(
            matches!(delete, Err(SsmError::AccessDenied(_))),
            "{delete:?}"
        );
    }

    #[test]
    fn get_and_delete_parameters_answer_what_they_could_not_find() {
        let dir = tempfile::tempdir().expect("dir");
        let ssm = service(dir.path());
        put(
            &ssm,
            json!({"Name": "a", "Value": "1,2", "Type": "StringList"}),
        )
        .expect("a");
        put(&ssm, json!({"Name": "b", "Value": "x", "Type": "String"})).expect("b");
        let names = |names: Value| serde_json::from_value(json!({ "Names": names })).expect("in");
        let got = ssm
            .get_parameters(names(json!(["a", "missing", "a", "b:7"])))
            .expect("get");
        assert_eq!(got["Parameters"].as_array().map(Vec::len), Some(1));
        assert_eq!(got["Parameters"][0]["Type"], "StringList");
        assert_eq!(got["InvalidParameters"], json!(["missing", "b:7"]));
        let deleted = ssm
            .delete_parameters(names(json!(["a", "b", "c"])))
            .expect("delete");
        assert_eq!(deleted["DeletedParameters"], json!(["a", "b"]));
        assert_eq!(deleted["InvalidParameters"], json!(["c"]));
        assert!(ssm.engine.read().parameters().is_empty());
    }
}

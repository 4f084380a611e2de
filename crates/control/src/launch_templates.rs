//! Launch templates: Create/Describe/Delete/ModifyLaunchTemplate and
//! Create/Describe/DeleteLaunchTemplateVersions.
//!
//! A template is one record holding its versions, numbered from 1; a number is never given
//! twice, so a deleted version's number never names other data later (Auto Scaling groups
//! refer to versions by number). The default version always exists: it cannot be deleted.
//! Names are unique per account, checked again under the write lock.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::describe::{self, Page, Paging, Query};
use crate::filter::{self, FilterField, Filterable};
use crate::idempotency::{create_once, ClientToken};
use crate::kinds::Tables;
use crate::launch_options::LaunchOptionsInput;
use crate::pagination::{paginate, PageBounds};
use crate::{Control, Error, Resource, Result, State, Tags};

/// The launch parameters of one version, as `RequestLaunchTemplateData` names them. Only the
/// fields RunInstances honours are here; the API refuses the others by name (unknown fields
/// are denied). Nested values were checked against the model by the decoder and are kept as
/// sent, to be read by RunInstances' own input types when a launch uses them; the options
/// RunInstances reads into [`LaunchOptionsInput`] are read the same way here, and checked when
/// the version is made as far as they need no instance type.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LaunchTemplateData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_group_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_interfaces: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_device_mappings: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_specifications: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iam_instance_profile: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_options: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_initiated_shutdown_behavior: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_options: Option<Value>,
    #[serde(flatten)]
    pub options: LaunchOptionsInput,
}

impl LaunchTemplateData {
    /// This data over `source`: the fields given here replace the source's, as EC2 does for a
    /// version created from a `SourceVersion`.
    fn over(&self, source: &LaunchTemplateData) -> Result<LaunchTemplateData> {
        let as_object = |data: &LaunchTemplateData| match serde_json::to_value(data) {
            Ok(Value::Object(object)) => Ok(object),
            _ => Err(Error::Internal(
                "launch template data is not an object".into(),
            )),
        };
        let mut merged = as_object(source)?;
        merged.extend(as_object(self)?);
        serde_json::from_value(Value::Object(merged)).map_err(|e| Error::Internal(e.to_string()))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LaunchTemplateVersion {
    pub version_number: u64,
    pub description: Option<String>,
    pub create_time: i64,
    pub created_by: String,
    pub data: LaunchTemplateData,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LaunchTemplate {
    pub launch_template_id: String,
    pub launch_template_name: String,
    pub create_time: i64,
    pub created_by: String,
    pub default_version: u64,
    /// The last number given to a version (deleted or not); the next one is this plus one.
    pub last_version_number: u64,
    /// In ascending order of number.
    pub versions: Vec<LaunchTemplateVersion>,
    pub tags: Tags,
}

impl LaunchTemplate {
    /// `LatestVersionNumber`: the highest version that still exists.
    pub fn latest_version(&self) -> u64 {
        self.versions.last().map_or(0, |v| v.version_number)
    }

    fn version(&self, number: u64) -> Option<&LaunchTemplateVersion> {
        self.versions.iter().find(|v| v.version_number == number)
    }

    /// A version as requests name it (`$Latest`, `$Default` or a number), which must exist.
    pub fn resolve(&self, version: &str) -> Result<&LaunchTemplateVersion> {
        let number = match version {
            "$Latest" => self.latest_version(),
            "$Default" => self.default_version,
            number => number.parse().map_err(|_| {
                Error::InvalidParameterValue(format!(
                    "The launch template version '{number}' is not valid: use a version \
                     number, $Latest or $Default."
                ))
            })?,
        };
        self.version(number).ok_or_else(|| {
            Error::LaunchTemplateVersionNotFound(format!(
                "Could not find launch template version {version} for launch template {}.",
                self.launch_template_id
            ))
        })
    }
}

impl Filterable for LaunchTemplate {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("create-time", |t, _| {
            vec![nimbus_core::iso8601_millis(t.create_time)]
        }),
        ("launch-template-name", |t, _| {
            vec![t.launch_template_name.clone()]
        }),
    ];
}

/// One version as DescribeLaunchTemplateVersions lists it, with its template's facts.
#[derive(Clone, Debug)]
pub struct VersionRow {
    pub launch_template_id: String,
    pub launch_template_name: String,
    pub is_default: bool,
    pub version: LaunchTemplateVersion,
    /// The page key: template ID and zero-padded number, so pages follow the list's order.
    key: String,
}

impl VersionRow {
    fn of(template: &LaunchTemplate, version: &LaunchTemplateVersion) -> VersionRow {
        VersionRow {
            launch_template_id: template.launch_template_id.clone(),
            launch_template_name: template.launch_template_name.clone(),
            is_default: version.version_number == template.default_version,
            key: format!(
                "{}:{:020}",
                template.launch_template_id, version.version_number
            ),
            version: version.clone(),
        }
    }
}

impl Filterable for VersionRow {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("create-time", |r, _| {
            vec![nimbus_core::iso8601_millis(r.version.create_time)]
        }),
        ("image-id", |r, _| {
            r.version.data.image_id.iter().cloned().collect()
        }),
        ("instance-type", |r, _| {
            r.version.data.instance_type.iter().cloned().collect()
        }),
        ("is-default-version", |r, _| vec![r.is_default.to_string()]),
        ("iam-instance-profile", |r, _| {
            let profile = r.version.data.iam_instance_profile.as_ref();
            ["Arn", "Name"]
                .iter()
                .filter_map(|member| profile?.get(member)?.as_str().map(str::to_owned))
                .collect()
        }),
    ];
}

/// The parts of a new version a request gives.
pub struct NewVersion {
    pub description: Option<String>,
    pub data: LaunchTemplateData,
    /// The caller's ARN (`CreatedBy`).
    pub created_by: String,
}

impl NewVersion {
    fn numbered(
        self,
        version_number: u64,
        source: Option<&LaunchTemplateData>,
    ) -> Result<LaunchTemplateVersion> {
        let data = match source {
            Some(source) => self.data.over(source)?,
            None => self.data,
        };
        data.options.check()?;
        Ok(LaunchTemplateVersion {
            version_number,
            description: self.description,
            create_time: nimbus_core::now_millis(),
            created_by: self.created_by,
            data,
        })
    }
}

/// Which template a request names: `LaunchTemplateId` or `LaunchTemplateName`, not both.
#[derive(Clone, Copy)]
pub struct TemplateRef<'a> {
    pub id: Option<&'a str>,
    pub name: Option<&'a str>,
}

impl TemplateRef<'_> {
    fn find<'s>(&self, state: &'s State) -> Result<&'s LaunchTemplate> {
        match (self.id, self.name) {
            (Some(id), None) => Ok(describe::existing::<LaunchTemplate>(state, id)?),
            (None, Some(name)) => state
                .launch_template_by_name(name)
                .ok_or_else(|| name_not_found(name)),
            (Some(_), Some(_)) => Err(Error::InvalidParameterCombination(
                "Specify either the launch template ID or the launch template name, not both."
                    .into(),
            )),
            (None, None) => Err(Error::MissingParameter(
                "LaunchTemplateId or LaunchTemplateName".into(),
            )),
        }
    }
}

/// Which versions DescribeLaunchTemplateVersions lists.
pub struct VersionQuery<'a> {
    /// `None` lists the versions of every template.
    pub template: Option<TemplateRef<'a>>,
    pub versions: &'a [String],
    pub min_version: Option<u64>,
    pub max_version: Option<u64>,
}

/// What DeleteLaunchTemplateVersions did: the numbers deleted, and each version it could not
/// delete with EC2's error code (`LaunchTemplateErrorCode`) and a message.
pub struct DeletedVersions {
    pub template: LaunchTemplate,
    pub deleted: Vec<u64>,
    pub refused: Vec<(String, &'static str, String)>,
}

/// EC2's bounds: DescribeLaunchTemplates 1–200, DescribeLaunchTemplateVersions 1–200.
const PAGING: Paging = Paging::within(1, 200);

/// AWS: 3 to 128 characters of letters, digits and `( ) . - / _`.
fn validate_name(name: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "().-/_".contains(c);
    if !(3..=128).contains(&name.len()) || !name.chars().all(allowed) {
        return Err(Error::MalformedLaunchTemplateName(
            "A launch template name must be between 3 and 128 characters, and may contain \
             letters, numbers, and the following characters: - ( ) . / _."
                .into(),
        ));
    }
    Ok(())
}

impl Control {
    pub fn create_launch_template(
        &self,
        name: &str,
        version: NewVersion,
        tags: Tags,
        token: Option<&ClientToken>,
        dry_run: bool,
    ) -> Result<LaunchTemplate> {
        validate_name(name)?;
        self.mutate(|txn| {
            create_once(txn, token, |txn| {
                if txn.state().launch_template_by_name(name).is_some() {
                    return Err(Error::Duplicate {
                        kind: LaunchTemplate::KIND,
                        id: name.to_owned(),
                    });
                }
                if dry_run {
                    return Err(Error::DryRunOperation);
                }
                let first = version.numbered(1, None)?;
                let template = LaunchTemplate {
                    launch_template_id: nimbus_core::new_id("lt"),
                    launch_template_name: name.to_owned(),
                    create_time: first.create_time,
                    created_by: first.created_by.clone(),
                    default_version: 1,
                    last_version_number: 1,
                    versions: vec![first],
                    tags,
                };
                txn.put(template.clone())?;
                Ok(template)
            })
        })
    }

    /// Adds a version (from `source_version`'s data when given) and returns it.
    pub fn create_launch_template_version(
        &self,
        template: TemplateRef<'_>,
        source_version: Option<&str>,
        version: NewVersion,
        token: Option<&ClientToken>,
        dry_run: bool,
    ) -> Result<VersionRow> {
        self.mutate(|txn| {
            let mut found = template.find(txn.state())?.clone();
            if let Some(token) = token {
                if let Some(first) = token.replay(txn.state())? {
                    // The first call's version, unless it was deleted since.
                    let number = first.as_u64().unwrap_or_default().to_string();
                    return Ok(VersionRow::of(&found, found.resolve(&number)?));
                }
            }
            let source = match source_version {
                Some(source) => Some(found.resolve(source)?.data.clone()),
                None => None,
            };
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            let number = found.last_version_number + 1;
            found
                .versions
                .push(version.numbered(number, source.as_ref())?);
            found.last_version_number = number;
            if let Some(token) = token {
                token.remember(txn, serde_json::json!(number))?;
            }
            let row = VersionRow::of(&found, found.resolve(&number.to_string())?);
            txn.put(found)?;
            Ok(row)
        })
    }

    /// The data of a template's version (`$Default` when `version` is `None`), for a launch.
    pub fn launch_template_data(
        &self,
        template: TemplateRef<'_>,
        version: Option<&str>,
    ) -> Result<LaunchTemplateData> {
        let state = self.read();
        let found = template.find(&state)?;
        Ok(found.resolve(version.unwrap_or("$Default"))?.data.clone())
    }

    /// Templates named by `names` (all must exist) and by the query's IDs.
    pub fn describe_launch_templates(
        &self,
        names: &[String],
        query: &Query,
    ) -> Result<Page<LaunchTemplate>> {
        let state = self.read();
        if let Some(missing) = names
            .iter()
            .find(|name| state.launch_template_by_name(name).is_none())
        {
            return Err(name_not_found(missing));
        }
        Ok(describe::describe::<LaunchTemplate>(
            &state,
            self.config(),
            query,
            PAGING,
            |t| names.is_empty() || names.contains(&t.launch_template_name),
        )?)
    }

    /// Deletes a template with all its versions, and returns it as it was.
    pub fn delete_launch_template(
        &self,
        template: TemplateRef<'_>,
        dry_run: bool,
    ) -> Result<LaunchTemplate> {
        self.mutate(|txn| {
            let found = template.find(txn.state())?.clone();
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            txn.delete::<LaunchTemplate>(&found.launch_template_id);
            Ok(found)
        })
    }

    /// Sets the default version (`DefaultVersion`: a number, or `$Latest`).
    pub fn modify_launch_template(
        &self,
        template: TemplateRef<'_>,
        default_version: Option<&str>,
        dry_run: bool,
    ) -> Result<LaunchTemplate> {
        self.mutate(|txn| {
            let mut found = template.find(txn.state())?.clone();
            let default = match default_version {
                Some(version) => Some(found.resolve(version)?.version_number),
                None => None,
            };
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            if let Some(default) = default {
                found.default_version = default;
                txn.put(found.clone())?;
            }
            Ok(found)
        })
    }

    /// Deletes the versions it can; a missing version or the default one is refused alone,
    /// as EC2 reports each version apart.
    pub fn delete_launch_template_versions(
        &self,
        template: TemplateRef<'_>,
        versions: &[String],
        dry_run: bool,
    ) -> Result<DeletedVersions> {
        self.mutate(|txn| {
            let mut found = template.find(txn.state())?.clone();
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            let mut deleted = Vec::new();
            let mut refused = Vec::new();
            for version in versions {
                match found.resolve(version).map(|v| v.version_number) {
                    Ok(number) if number == found.default_version => refused.push((
                        version.clone(),
                        "unexpectedError",
                        "Cannot delete the default version of a launch template. Use \
                         DeleteLaunchTemplate to delete the template and all its versions."
                            .to_owned(),
                    )),
                    Ok(number) => {
                        found.versions.retain(|v| v.version_number != number);
                        deleted.push(number);
                    }
                    Err(error) => refused.push((
                        version.clone(),
                        "launchTemplateVersionDoesNotExist",
                        error.to_string(),
                    )),
                }
            }
            if !deleted.is_empty() {
                txn.put(found.clone())?;
            }
            Ok(DeletedVersions {
                template: found,
                deleted,
                refused,
            })
        })
    }

    pub fn describe_launch_template_versions(
        &self,
        request: &VersionQuery<'_>,
        query: &Query,
    ) -> Result<Page<VersionRow>> {
        filter::validate_filters::<VersionRow>(&query.filters, false)?;
        let state = self.read();
        let templates: Vec<&LaunchTemplate> = match request.template {
            Some(template) => vec![template.find(&state)?],
            None => state.launch_templates().values().collect(),
        };
        let mut rows = Vec::new();
        for template in templates {
            rows.extend(versions_of(template, request)?);
        }
        rows.retain(|row| filter::matches(row, None, &query.filters, self.config()));
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(paginate(
            rows,
            |row| row.key.as_str(),
            query.max_results,
            query.next_token.as_deref(),
            PageBounds { min: 1, max: 200 },
        )?)
    }
}

/// The versions of one template a request asks for: the listed ones (each must exist), or
/// every one within `MinVersion`/`MaxVersion`.
fn versions_of(template: &LaunchTemplate, request: &VersionQuery<'_>) -> Result<Vec<VersionRow>> {
    let mut picked: Vec<&LaunchTemplateVersion> = if request.versions.is_empty() {
        template.versions.iter().collect()
    } else {
        let mut listed = Vec::new();
        for version in request.versions {
            listed.push(template.resolve(version)?);
        }
        listed
    };
    picked.retain(|v| {
        request
            .min_version
            .is_none_or(|min| v.version_number >= min)
            && request
                .max_version
                .is_none_or(|max| v.version_number <= max)
    });
    picked.sort_by_key(|v| v.version_number);
    picked.dedup_by_key(|v| v.version_number);
    Ok(picked
        .into_iter()
        .map(|version| VersionRow::of(template, version))
        .collect())
}

/// Lookups of the working set that the rules of this module answer.
pub trait LaunchTemplateQueries {
    fn launch_template_by_name(&self, name: &str) -> Option<&LaunchTemplate>;
}

impl LaunchTemplateQueries for State {
    fn launch_template_by_name(&self, name: &str) -> Option<&LaunchTemplate> {
        self.launch_templates()
            .values()
            .find(|t| t.launch_template_name == name)
    }
}

fn name_not_found(name: &str) -> Error {
    Error::LaunchTemplateNameNotFound(format!(
        "At least one of the launch templates specified in the request does not exist: {name}."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness;

    fn data(instance_type: &str) -> LaunchTemplateData {
        LaunchTemplateData {
            instance_type: Some(instance_type.into()),
            image_id: Some("ami-0123456789abcdef0".into()),
            ..LaunchTemplateData::default()
        }
    }

    fn version(data: LaunchTemplateData) -> NewVersion {
        NewVersion {
            description: None,
            data,
            created_by: "arn:aws:iam::000000000000:root".into(),
        }
    }

    fn by_name(name: &str) -> TemplateRef<'_> {
        TemplateRef {
            id: None,
            name: Some(name),
        }
    }

    fn numbers(h: &Harness, name: &str, versions: &[String]) -> Vec<u64> {
        let query = VersionQuery {
            template: Some(by_name(name)),
            versions,
            min_version: None,
            max_version: None,
        };
        let (rows, _) = (h.control)
            .describe_launch_template_versions(&query, &Query::default())
            .expect("versions");
        rows.iter().map(|r| r.version.version_number).collect()
    }

    /// Template data carries the options RunInstances reads under the same names, and a
    /// value nimbus refuses at launch is refused when the version is made.
    #[tokio::test]
    async fn templates_take_the_launch_options_runinstances_takes() {
        let h = Harness::new().await;
        let data: LaunchTemplateData = serde_json::from_value(serde_json::json!({
            "InstanceType": "t3.micro", "DisableApiTermination": true, "EbsOptimized": false,
            "CreditSpecification": {"CpuCredits": "unlimited"},
            "EnclaveOptions": {"Enabled": false},
        }))
        .expect("template data");
        assert_eq!(data.options.disable_api_termination, Some(true));
        let template = (h.control)
            .create_launch_template("opts", version(data.clone()), Tags::default(), None, false)
            .expect("created");
        let stored = &template.versions[0].data;
        assert_eq!(stored, &data);
        let json = serde_json::to_value(stored).expect("json");
        assert_eq!(json["CreditSpecification"]["CpuCredits"], "unlimited");
        let refused: LaunchTemplateData =
            serde_json::from_value(serde_json::json!({"EnclaveOptions": {"Enabled": true}}))
                .expect("template data");
        let outcome = (h.control).create_launch_template(
            "enclave",
            version(refused),
            Tags::default(),
            None,
            false,
        );
        assert!(matches!(outcome, Err(Error::Unsupported(_))), "{outcome:?}");
        let unknown = serde_json::from_value::<LaunchTemplateData>(
            serde_json::json!({"ElasticGpuSpecifications": []}),
        );
        assert!(unknown.is_err(), "an unhonoured field is still refused");
    }

    #[tokio::test]
    async fn names_are_unique_and_well_formed() {
        let h = Harness::new().await;
        let create = |name: &str| {
            h.control.create_launch_template(
                name,
                version(data("t3.micro")),
                Tags::new(),
                None,
                false,
            )
        };
        let created = create("web(1)/v.2_x-y").expect("create");
        assert!(LaunchTemplate::KIND
            .check_id(&created.launch_template_id)
            .is_ok());
        assert!(matches!(
            create("web(1)/v.2_x-y"),
            Err(Error::Duplicate { .. })
        ));
        for bad in ["ab", "has space", "star*", &"x".repeat(129)] {
            assert!(
                matches!(create(bad), Err(Error::MalformedLaunchTemplateName(_))),
                "{bad}"
            );
        }
        let missing = h
            .control
            .describe_launch_templates(&["nope".into()], &Query::default());
        assert!(matches!(missing, Err(Error::LaunchTemplateNameNotFound(_))));
    }

    #[tokio::test]
    async fn versions_copy_their_source_and_numbers_are_never_reused() {
        let h = Harness::new().await;
        (h.control)
            .create_launch_template("fleet", version(data("t3.micro")), Tags::new(), None, false)
            .expect("create");
        let only_type = LaunchTemplateData {
            instance_type: Some("t3.large".into()),
            ..LaunchTemplateData::default()
        };
        let second = (h.control)
            .create_launch_template_version(
                by_name("fleet"),
                Some("$Default"),
                version(only_type.clone()),
                None,
                false,
            )
            .expect("second");
        assert_eq!(second.version.version_number, 2);
        assert_eq!(second.version.data, data("t3.large"));
        let third = (h.control)
            .create_launch_template_version(by_name("fleet"), None, version(only_type), None, false)
            .expect("third");
        assert_eq!(third.version.data.image_id, None);
        assert_eq!(
            numbers(&h, "fleet", &["$Latest".into(), "$Default".into()]),
            [1, 3]
        );

        (h.control)
            .modify_launch_template(by_name("fleet"), Some("$Latest"), false)
            .expect("modify");
        let outcome = (h.control)
            .delete_launch_template_versions(
                by_name("fleet"),
                &["3".into(), "2".into(), "x".into()],
                false,
            )
            .expect("delete versions");
        assert_eq!(outcome.deleted, [2]);
        let codes: Vec<&str> = outcome.refused.iter().map(|(_, code, _)| *code).collect();
        assert_eq!(
            codes,
            ["unexpectedError", "launchTemplateVersionDoesNotExist"]
        );
        let fourth = (h.control)
            .create_launch_template_version(
                by_name("fleet"),
                None,
                version(data("t3.nano")),
                None,
                false,
            )
            .expect("fourth");
        assert_eq!(fourth.version.version_number, 4);
        assert_eq!(numbers(&h, "fleet", &[]), [1, 3, 4]);
        assert!(matches!(
            h.control
                .modify_launch_template(by_name("fleet"), Some("2"), false),
            Err(Error::LaunchTemplateVersionNotFound(_))
        ));
    }

    #[tokio::test]
    async fn templates_are_kept_across_a_restart_and_deleted_whole() {
        let h = Harness::new().await;
        let created = (h.control).create_launch_template(
            "kept",
            version(data("t3.micro")),
            Tags::new(),
            None,
            true,
        );
        assert!(matches!(created, Err(Error::DryRunOperation)));
        (h.control)
            .create_launch_template("kept", version(data("t3.micro")), Tags::new(), None, false)
            .expect("create");
        let h = h.reopen();
        assert_eq!(numbers(&h, "kept", &[]), [1]);
        h.control
            .delete_launch_template(by_name("kept"), false)
            .expect("delete");
        assert!(h.control.read().launch_templates().is_empty());
        let filters = Query {
            filters: vec![filter::Filter {
                name: "kernel-id".into(),
                values: vec![],
            }],
            ..Query::default()
        };
        let unknown = VersionQuery {
            template: None,
            versions: &[],
            min_version: None,
            max_version: None,
        };
        assert!(h
            .control
            .describe_launch_template_versions(&unknown, &filters)
            .is_err());
    }
}

//! IAM roles and instance profiles: CreateRole, GetRole, ListRoles, DeleteRole,
//! UpdateAssumeRolePolicy, CreateInstanceProfile, Add/RemoveRoleFromInstanceProfile,
//! GetInstanceProfile, ListInstanceProfiles, DeleteInstanceProfile.
//!
//! Invariants: names are unique per kind regardless of case, as in IAM; an instance profile
//! holds at most one role; a role inside a profile and a profile holding a role cannot be
//! deleted. Policies are stored as given (URL-decoded) and never evaluated.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::filter::{FilterField, Filterable};
use crate::kinds::Tables;
use crate::{Control, Error, Tags, Txn};

/// Why an IAM or STS operation failed; the wire layer maps each variant to AWS's code.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// IAM `NoSuchEntity` (404).
    #[error("{0}")]
    NoSuchEntity(String),
    /// IAM `EntityAlreadyExists` (409).
    #[error("{0}")]
    EntityAlreadyExists(String),
    /// IAM `DeleteConflict` (409).
    #[error("{0}")]
    DeleteConflict(String),
    /// IAM `LimitExceeded` (409).
    #[error("{0}")]
    LimitExceeded(String),
    /// `ValidationError` (400), in IAM's and STS's wording.
    #[error("{0}")]
    Validation(String),
    /// `MalformedPolicyDocument` (400).
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// STS `AccessDenied` (403).
    #[error("{0}")]
    AccessDenied(String),
    /// Storage or internal failure (500).
    #[error(transparent)]
    Control(#[from] Error),
}

impl From<engine::Error> for IdentityError {
    fn from(error: engine::Error) -> IdentityError {
        IdentityError::Control(error.into())
    }
}

pub type IdentityResult<T> = std::result::Result<T, IdentityError>;

/// Longest trust policy IAM accepts, in characters.
const MAX_POLICY_CHARS: usize = 131_072;
const MAX_DESCRIPTION_CHARS: usize = 1000;
const MAX_TAGS: u64 = 50;
pub const DEFAULT_MAX_SESSION_DURATION: u32 = 3600;
const SESSION_DURATION_RANGE: std::ops::RangeInclusive<u32> = 3600..=43200;
const MAX_ITEMS_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;
const DEFAULT_MAX_ITEMS: u32 = 100;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Role {
    pub role_id: String,
    pub role_name: String,
    pub path: String,
    pub arn: String,
    pub create_date: i64,
    /// The trust policy, as JSON text (URL-decoded when it was sent encoded). IAM's wire
    /// answers carry it URL-encoded.
    pub assume_role_policy_document: String,
    pub description: Option<String>,
    pub max_session_duration: u32,
    pub tags: Tags,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InstanceProfile {
    pub instance_profile_id: String,
    pub instance_profile_name: String,
    pub path: String,
    pub arn: String,
    pub create_date: i64,
    /// The one role it holds, by role ID.
    pub role_id: Option<String>,
    pub tags: Tags,
}

/// An instance profile with its roles resolved, as GetInstanceProfile answers it.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceProfileView {
    pub profile: InstanceProfile,
    pub roles: Vec<Role>,
}

/// One page of a List* answer: `marker` is set (and `is_truncated`) when more follow.
#[derive(Clone, Debug, PartialEq)]
pub struct IamPage<T> {
    pub items: Vec<T>,
    pub is_truncated: bool,
    pub marker: Option<String>,
}

/// CreateRole's parameters.
#[derive(Clone, Debug, Default)]
pub struct CreateRoleInput {
    pub role_name: String,
    pub path: Option<String>,
    pub assume_role_policy_document: String,
    pub description: Option<String>,
    pub max_session_duration: Option<u32>,
    pub tags: Vec<(String, String)>,
}

/// CreateInstanceProfile's parameters.
#[derive(Clone, Debug, Default)]
pub struct CreateInstanceProfileInput {
    pub instance_profile_name: String,
    pub path: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// ListRoles' and ListInstanceProfiles' parameters.
#[derive(Clone, Debug, Default)]
pub struct ListInput {
    pub path_prefix: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<u32>,
}

// IAM lists by path prefix, not by EC2 filters.
impl Filterable for Role {
    const FILTERS: &'static [FilterField<Self>] = &[];
}

impl Filterable for InstanceProfile {
    const FILTERS: &'static [FilterField<Self>] = &[];
}

/// IAM's unique IDs: a four-letter type prefix and 17 uppercase letters and digits.
pub(crate) fn new_unique_id(prefix: &str, length: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::thread_rng();
    let tail: String = (0..length)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("{prefix}{tail}")
}

/// IAM's wording for a parameter that breaks its model's constraint.
fn constraint(value: &str, member: &str, rule: &str) -> IdentityError {
    IdentityError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {rule}"
    ))
}

/// Checks a name against IAM's `[\w+=,.@-]{min,max}`.
pub(crate) fn validate_name(
    value: &str,
    member: &str,
    lengths: std::ops::RangeInclusive<usize>,
) -> IdentityResult<()> {
    let length = value.chars().count();
    if length < *lengths.start() {
        return Err(constraint(
            value,
            member,
            &format!(
                "Member must have length greater than or equal to {}",
                lengths.start()
            ),
        ));
    }
    if length > *lengths.end() {
        return Err(constraint(
            value,
            member,
            &format!(
                "Member must have length less than or equal to {}",
                lengths.end()
            ),
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
    if !value.chars().all(allowed) {
        return Err(constraint(
            value,
            member,
            "Member must satisfy regular expression pattern: [\\w+=,.@-]+",
        ));
    }
    Ok(())
}

/// A path is `/` or `/segments/`, 1..512 printable ASCII characters.
fn validate_path(path: &str, member: &str) -> IdentityResult<()> {
    let printable = path.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c));
    if path.is_empty() || path.len() > 512 || !printable {
        return Err(constraint(
            path,
            member,
            "Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)",
        ));
    }
    if !path.starts_with('/') || !path.ends_with('/') {
        return Err(IdentityError::Validation(format!(
            "The specified value for path is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters. Value: {path}"
        )));
    }
    Ok(())
}

/// The trust policy as IAM keeps it: JSON text, URL-decoded when it came encoded.
pub(crate) fn normalize_policy_document(document: &str) -> IdentityResult<String> {
    if document.is_empty() || document.chars().count() > MAX_POLICY_CHARS {
        return Err(constraint(
            "",
            "assumeRolePolicyDocument",
            &format!("Member must have length between 1 and {MAX_POLICY_CHARS}"),
        ));
    }
    let is_object =
        |text: &str| serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v.is_object());
    if is_object(document) {
        return Ok(document.to_owned());
    }
    let decoded = percent_encoding::percent_decode_str(document)
        .decode_utf8()
        .map(|text| text.into_owned())
        .ok();
    match decoded {
        Some(text) if is_object(&text) => Ok(text),
        _ => Err(IdentityError::MalformedPolicyDocument(
            "This policy contains invalid Json".into(),
        )),
    }
}

/// IAM's `LimitExceeded`, in its wording, when `count` passes the quota's `max`.
fn check_quota(quota: &str, count: u64, max: u64) -> IdentityResult<()> {
    if count > max {
        return Err(IdentityError::LimitExceeded(format!(
            "Cannot exceed quota for {quota}: {max}."
        )));
    }
    Ok(())
}

/// Tags of a new role or instance profile; `quota` names IAM's limit in its message.
fn validate_tags(tags: &[(String, String)], quota: &str) -> IdentityResult<Tags> {
    check_quota(quota, tags.len() as u64, MAX_TAGS)?;
    let mut map = Tags::new();
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 {
            return Err(constraint(
                key,
                "tags.member.key",
                "Member must have length between 1 and 128",
            ));
        }
        if value.chars().count() > 256 {
            return Err(constraint(
                value,
                "tags.member.value",
                "Member must have length less than or equal to 256",
            ));
        }
        if map.keys().any(|seen| seen.eq_ignore_ascii_case(key)) {
            return Err(IdentityError::Validation(format!(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive: {key}"
            )));
        }
        map.insert(key.clone(), value.clone());
    }
    Ok(map)
}

/// What List* actions page through: named things below a path.
trait Listed {
    fn path(&self) -> &str;
    fn name(&self) -> &str;
}

impl Listed for Role {
    fn path(&self) -> &str {
        &self.path
    }
    fn name(&self) -> &str {
        &self.role_name
    }
}

impl Listed for InstanceProfile {
    fn path(&self) -> &str {
        &self.path
    }
    fn name(&self) -> &str {
        &self.instance_profile_name
    }
}

/// One page of `items` below `PathPrefix`, by name regardless of case, shown through `view`.
fn list<'a, S: Listed + 'a, T>(
    items: impl Iterator<Item = &'a S>,
    view: impl Fn(&S) -> T,
    input: &ListInput,
) -> IdentityResult<IamPage<T>> {
    let prefix = input.path_prefix.as_deref().unwrap_or("");
    let mut items: Vec<(String, T)> = items
        .filter(|item| item.path().starts_with(prefix))
        .map(|item| (name_key(item.name()), view(item)))
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    page(items, input)
}

fn page<T>(items: Vec<(String, T)>, input: &ListInput) -> IdentityResult<IamPage<T>> {
    let max_items = input.max_items.unwrap_or(DEFAULT_MAX_ITEMS);
    if !MAX_ITEMS_RANGE.contains(&max_items) {
        return Err(constraint(
            &max_items.to_string(),
            "maxItems",
            "Member must have value between 1 and 1000",
        ));
    }
    // The marker is the sort key of the first item of the next page.
    let mut rest: Vec<(String, T)> = items
        .into_iter()
        .filter(|(key, _)| input.marker.as_deref().is_none_or(|m| key.as_str() >= m))
        .collect();
    let marker = rest.get(max_items as usize).map(|(key, _)| key.clone());
    rest.truncate(max_items as usize);
    Ok(IamPage {
        items: rest.into_iter().map(|(_, item)| item).collect(),
        is_truncated: marker.is_some(),
        marker,
    })
}

/// The case-insensitive key IAM names are unique and listed by.
fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

pub(crate) fn find_role<'a>(roles: &'a BTreeMap<String, Role>, name: &str) -> Option<&'a Role> {
    roles
        .values()
        .find(|role| role.role_name.eq_ignore_ascii_case(name))
}

fn role_not_found(name: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!("The role with name {name} cannot be found."))
}

fn profile_not_found(name: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!("Instance Profile {name} cannot be found."))
}

fn delete_conflict() -> IdentityError {
    IdentityError::DeleteConflict(
        "Cannot delete entity, must remove roles from instance profile first.".into(),
    )
}

fn existing_role(txn: &Txn, name: &str) -> IdentityResult<Role> {
    find_role(txn.state().roles(), name)
        .cloned()
        .ok_or_else(|| role_not_found(name))
}

pub(crate) fn find_profile<'a>(
    profiles: &'a BTreeMap<String, InstanceProfile>,
    name: &str,
) -> Option<&'a InstanceProfile> {
    profiles
        .values()
        .find(|p| p.instance_profile_name.eq_ignore_ascii_case(name))
}

fn existing_profile(txn: &Txn, name: &str) -> IdentityResult<InstanceProfile> {
    find_profile(txn.state().instance_profiles(), name)
        .cloned()
        .ok_or_else(|| profile_not_found(name))
}

impl Control {
    /// CreateRole: the role with a fresh `AROA…` ID and its ARN `arn:aws:iam::ACCOUNT:role{Path}{Name}`.
    pub fn create_role(&self, input: CreateRoleInput) -> IdentityResult<Role> {
        validate_name(&input.role_name, "roleName", 1..=64)?;
        let path = input.path.unwrap_or_else(|| "/".into());
        validate_path(&path, "path")?;
        let document = normalize_policy_document(&input.assume_role_policy_document)?;
        if let Some(description) = &input.description {
            if description.chars().count() > MAX_DESCRIPTION_CHARS {
                return Err(constraint(
                    description,
                    "description",
                    "Member must have length less than or equal to 1000",
                ));
            }
        }
        let max_session_duration = input
            .max_session_duration
            .unwrap_or(DEFAULT_MAX_SESSION_DURATION);
        if !SESSION_DURATION_RANGE.contains(&max_session_duration) {
            return Err(IdentityError::Validation(format!(
                "The requested MaxSessionDuration {max_session_duration} is invalid: it must be between 3600 and 43200 seconds."
            )));
        }
        let tags = validate_tags(&input.tags, "TagsPerRole")?;
        let role = Role {
            role_id: new_unique_id("AROA", 17),
            arn: format!(
                "arn:aws:iam::{}:role{path}{}",
                self.config().account_id,
                input.role_name
            ),
            role_name: input.role_name,
            path,
            create_date: nimbus_core::now_millis(),
            assume_role_policy_document: document,
            description: input.description,
            max_session_duration,
            tags,
        };
        self.mutate_with(|txn| {
            if let Some(existing) = find_role(txn.state().roles(), &role.role_name) {
                return Err(IdentityError::EntityAlreadyExists(format!(
                    "Role with name {} already exists.",
                    existing.role_name
                )));
            }
            let roles = txn.state().roles().len() as u64;
            check_quota("RolesPerAccount", roles + 1, self.config().limits.iam_roles)?;
            txn.put(role.clone())?;
            Ok(role)
        })
    }

    pub fn get_role(&self, role_name: &str) -> IdentityResult<Role> {
        find_role(self.read().roles(), role_name)
            .cloned()
            .ok_or_else(|| role_not_found(role_name))
    }

    /// ListRoles, by name, optionally below a path prefix.
    pub fn list_roles(&self, input: &ListInput) -> IdentityResult<IamPage<Role>> {
        list(self.read().roles().values(), Role::clone, input)
    }

    /// DeleteRole: refused with `DeleteConflict` while an instance profile holds the role.
    pub fn delete_role(&self, role_name: &str) -> IdentityResult<()> {
        self.mutate_with(|txn| {
            let role = existing_role(txn, role_name)?;
            let in_profile = txn
                .state()
                .instance_profiles()
                .values()
                .any(|p| p.role_id.as_deref() == Some(role.role_id.as_str()));
            if in_profile {
                return Err(delete_conflict());
            }
            txn.delete::<Role>(&role.role_id);
            Ok(())
        })
    }

    pub fn update_assume_role_policy(
        &self,
        role_name: &str,
        policy_document: &str,
    ) -> IdentityResult<()> {
        let document = normalize_policy_document(policy_document)?;
        self.mutate_with(|txn| {
            let mut role = existing_role(txn, role_name)?;
            role.assume_role_policy_document = document;
            txn.put(role)?;
            Ok(())
        })
    }

    /// CreateInstanceProfile: empty, with a fresh `AIPA…` ID.
    pub fn create_instance_profile(
        &self,
        input: CreateInstanceProfileInput,
    ) -> IdentityResult<InstanceProfile> {
        validate_name(&input.instance_profile_name, "instanceProfileName", 1..=128)?;
        let path = input.path.unwrap_or_else(|| "/".into());
        validate_path(&path, "path")?;
        let profile = InstanceProfile {
            instance_profile_id: new_unique_id("AIPA", 17),
            arn: format!(
                "arn:aws:iam::{}:instance-profile{path}{}",
                self.config().account_id,
                input.instance_profile_name
            ),
            instance_profile_name: input.instance_profile_name,
            path,
            create_date: nimbus_core::now_millis(),
            role_id: None,
            tags: validate_tags(&input.tags, "TagsPerInstanceProfile")?,
        };
        self.mutate_with(|txn| {
            if let Some(existing) = find_profile(
                txn.state().instance_profiles(),
                &profile.instance_profile_name,
            ) {
                return Err(IdentityError::EntityAlreadyExists(format!(
                    "Instance Profile {} already exists.",
                    existing.instance_profile_name
                )));
            }
            let profiles = txn.state().instance_profiles().len() as u64;
            let max = self.config().limits.instance_profiles;
            check_quota("InstanceProfilesPerAccount", profiles + 1, max)?;
            txn.put(profile.clone())?;
            Ok(profile)
        })
    }

    /// AddRoleToInstanceProfile: `LimitExceeded` when the profile already holds a role.
    pub fn add_role_to_instance_profile(
        &self,
        instance_profile_name: &str,
        role_name: &str,
    ) -> IdentityResult<()> {
        self.change_profile_role(
            instance_profile_name,
            role_name,
            |profile, role| match profile.role_id {
                Some(_) => Err(IdentityError::LimitExceeded(
                    "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1".into(),
                )),
                None => Ok(Some(role.role_id.clone())),
            },
        )
    }

    pub fn remove_role_from_instance_profile(
        &self,
        instance_profile_name: &str,
        role_name: &str,
    ) -> IdentityResult<()> {
        self.change_profile_role(instance_profile_name, role_name, |profile, role| {
            if profile.role_id.as_deref() == Some(role.role_id.as_str()) {
                Ok(None)
            } else {
                Err(IdentityError::NoSuchEntity(format!(
                    "The role with name {} cannot be found in instance profile {}.",
                    role.role_name, profile.instance_profile_name
                )))
            }
        })
    }

    /// Finds a profile and a role by name and stores the profile's role that `decide` picks.
    fn change_profile_role(
        &self,
        instance_profile_name: &str,
        role_name: &str,
        decide: impl FnOnce(&InstanceProfile, &Role) -> IdentityResult<Option<String>>,
    ) -> IdentityResult<()> {
        self.mutate_with(|txn| {
            let mut profile = existing_profile(txn, instance_profile_name)?;
            let role = existing_role(txn, role_name)?;
            profile.role_id = decide(&profile, &role)?;
            txn.put(profile)?;
            Ok(())
        })
    }

    pub fn get_instance_profile(
        &self,
        instance_profile_name: &str,
    ) -> IdentityResult<InstanceProfileView> {
        let state = self.read();
        find_profile(state.instance_profiles(), instance_profile_name)
            .map(|profile| profile_view(state.roles(), profile))
            .ok_or_else(|| profile_not_found(instance_profile_name))
    }

    /// ListInstanceProfiles, by name, optionally below a path prefix.
    pub fn list_instance_profiles(
        &self,
        input: &ListInput,
    ) -> IdentityResult<IamPage<InstanceProfileView>> {
        let state = self.read();
        let view = |profile: &InstanceProfile| profile_view(state.roles(), profile);
        list(state.instance_profiles().values(), view, input)
    }

    /// DeleteInstanceProfile: refused with `DeleteConflict` while it holds a role.
    pub fn delete_instance_profile(&self, instance_profile_name: &str) -> IdentityResult<()> {
        self.mutate_with(|txn| {
            let profile = existing_profile(txn, instance_profile_name)?;
            if profile.role_id.is_some() {
                return Err(delete_conflict());
            }
            txn.delete::<InstanceProfile>(&profile.instance_profile_id);
            Ok(())
        })
    }
}

fn profile_view(roles: &BTreeMap<String, Role>, profile: &InstanceProfile) -> InstanceProfileView {
    InstanceProfileView {
        profile: profile.clone(),
        roles: profile
            .role_id
            .as_ref()
            .and_then(|id| roles.get(id))
            .cloned()
            .into_iter()
            .collect(),
    }
}

/// A real control plane on a temporary data dir, for the identity rules' tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;
    use std::sync::Arc;

    use crate::Control;

    pub const TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

    /// Opens (or reopens) a control plane whose state lives in `dir`.
    pub async fn control(dir: &Path) -> Control {
        let config = nimbus_core::Config {
            data_dir: dir.to_owned(),
            ..nimbus_core::Config::default()
        };
        let store = Arc::new(store::SqliteStore::open(&dir.join("state.db")).expect("store"));
        let objects = blockstore::ObjectStoreSpec::Local(dir.join("objects"));
        let engine = blockstore::BlockStore::open(&dir.join("blockstore"), objects)
            .await
            .expect("block store");
        Control::open(
            config,
            store,
            crate::Drivers::on_host(engine, Arc::new(network::FakeNetwork::default())),
        )
        .expect("control")
    }

    pub fn role(control: &Control, name: &str, max_session_duration: Option<u32>) -> super::Role {
        control
            .create_role(super::CreateRoleInput {
                role_name: name.into(),
                assume_role_policy_document: TRUST_POLICY.into(),
                max_session_duration,
                ..Default::default()
            })
            .expect("create role")
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{control, role, TRUST_POLICY};
    use super::*;

    fn is<T: std::fmt::Debug>(
        result: IdentityResult<T>,
        check: fn(&IdentityError) -> bool,
    ) -> bool {
        result.as_ref().err().is_some_and(check)
    }

    #[tokio::test]
    async fn roles_and_instance_profiles_stop_at_the_account_quota() {
        let h = crate::testkit::Harness::with_limits(nimbus_core::Limits {
            iam_roles: 1,
            instance_profiles: 1,
            ..nimbus_core::Limits::default()
        })
        .await;
        role(&h.control, "first", None);
        let second = h.control.create_role(CreateRoleInput {
            role_name: "second".into(),
            assume_role_policy_document: TRUST_POLICY.into(),
            ..Default::default()
        });
        let Err(IdentityError::LimitExceeded(message)) = second else {
            panic!("the second role is refused: {second:?}");
        };
        assert_eq!(message, "Cannot exceed quota for RolesPerAccount: 1.");
        let profile = |name: &str| {
            h.control
                .create_instance_profile(CreateInstanceProfileInput {
                    instance_profile_name: name.into(),
                    path: None,
                    tags: Vec::new(),
                })
        };
        profile("first").expect("first profile");
        assert!(is(profile("second"), |e| matches!(
            e,
            IdentityError::LimitExceeded(_)
        )));
        let state = h.control.read();
        assert_eq!(
            (state.roles().len(), state.instance_profiles().len()),
            (1, 1)
        );
    }

    #[test]
    fn names_follow_iams_pattern_and_lengths() {
        assert!(validate_name("web-role_1+=,.@", "roleName", 1..=64).is_ok());
        for bad in ["", "has space", "slash/no", "ümlaut", &"x".repeat(65)] {
            let error = validate_name(bad, "roleName", 1..=64).expect_err(bad);
            assert!(matches!(error, IdentityError::Validation(_)), "{bad}");
        }
        assert!(validate_name("a", "roleSessionName", 2..=64).is_err());
    }

    #[test]
    fn tags_keys_are_unique_regardless_of_case_and_limited_to_fifty() {
        let tag = |k: &str| (k.to_owned(), "v".to_owned());
        assert!(validate_tags(&[tag("team"), tag("env")], "TagsPerRole").is_ok());
        assert!(matches!(
            validate_tags(&[tag("team"), tag("TEAM")], "TagsPerRole"),
            Err(IdentityError::Validation(_))
        ));
        let many: Vec<_> = (0..51).map(|i| tag(&format!("k{i}"))).collect();
        assert!(matches!(
            validate_tags(&many, "TagsPerRole"),
            Err(IdentityError::LimitExceeded(_))
        ));
    }

    #[test]
    fn policy_documents_are_json_objects_url_decoded_as_iam_does() {
        assert_eq!(
            normalize_policy_document(TRUST_POLICY).ok().as_deref(),
            Some(TRUST_POLICY)
        );
        let encoded: String =
            percent_encoding::utf8_percent_encode(TRUST_POLICY, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        assert_eq!(
            normalize_policy_document(&encoded).ok().as_deref(),
            Some(TRUST_POLICY)
        );
        for bad in ["not json", "[1,2]", "%7B", "\"text\""] {
            assert!(
                matches!(
                    normalize_policy_document(bad),
                    Err(IdentityError::MalformedPolicyDocument(_))
                ),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn roles_are_created_found_listed_and_unique_regardless_of_case() {
        let dir = tempfile::tempdir().expect("tempdir");
        let control = control(dir.path()).await;
        let created = control
            .create_role(CreateRoleInput {
                role_name: "Web".into(),
                path: Some("/app/".into()),
                assume_role_policy_document: TRUST_POLICY.into(),
                description: Some("web servers".into()),
                tags: vec![("team".into(), "blue".into())],
                ..Default::default()
            })
            .expect("create");
        assert_eq!(created.arn, "arn:aws:iam::000000000000:role/app/Web");
        assert!(created.role_id.starts_with("AROA") && created.role_id.len() == 21);
        assert_eq!(created.max_session_duration, 3600);
        assert_eq!(control.get_role("web").expect("get"), created);
        assert!(is(
            control.create_role(CreateRoleInput {
                role_name: "WEB".into(),
                assume_role_policy_document: TRUST_POLICY.into(),
                ..Default::default()
            }),
            |e| matches!(e, IdentityError::EntityAlreadyExists(_))
        ));
        for (duration, ok) in [(3599, false), (3600, true), (43200, true), (43201, false)] {
            let name = format!("d{duration}");
            let result = control.create_role(CreateRoleInput {
                role_name: name,
                assume_role_policy_document: TRUST_POLICY.into(),
                max_session_duration: Some(duration),
                ..Default::default()
            });
            assert_eq!(result.is_ok(), ok, "{duration}");
        }
        assert!(is(
            control.create_role(CreateRoleInput {
                role_name: "bad-path".into(),
                path: Some("app".into()),
                assume_role_policy_document: TRUST_POLICY.into(),
                ..Default::default()
            }),
            |e| matches!(e, IdentityError::Validation(_))
        ));

        let first = control
            .list_roles(&ListInput {
                max_items: Some(2),
                ..Default::default()
            })
            .expect("list");
        assert_eq!(first.items.len(), 2);
        assert!(first.is_truncated);
        let rest = control
            .list_roles(&ListInput {
                marker: first.marker.clone(),
                ..Default::default()
            })
            .expect("list rest");
        assert_eq!(rest.items.len(), 1);
        assert!(!rest.is_truncated);
        let under_app = control
            .list_roles(&ListInput {
                path_prefix: Some("/app/".into()),
                ..Default::default()
            })
            .expect("list by path");
        assert_eq!(under_app.items, vec![created.clone()]);

        control
            .update_assume_role_policy("Web", r#"{"Version":"2012-10-17","Statement":[]}"#)
            .expect("update");
        assert!(is(
            control.update_assume_role_policy("Web", "{"),
            |e| matches!(e, IdentityError::MalformedPolicyDocument(_))
        ));
        assert!(is(control.get_role("nobody"), |e| matches!(
            e,
            IdentityError::NoSuchEntity(_)
        )));

        // Acknowledged roles survive a restart.
        drop(control);
        let reopened = super::testing::control(dir.path()).await;
        let survived = reopened.get_role("Web").expect("role after restart");
        assert_eq!(survived.role_id, created.role_id);
        assert!(survived
            .assume_role_policy_document
            .contains("\"Statement\":[]"));
    }

    #[tokio::test]
    async fn instance_profiles_hold_one_role_and_block_deletes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let control = control(dir.path()).await;
        let web = role(&control, "web", None);
        role(&control, "db", None);
        let profile = control
            .create_instance_profile(CreateInstanceProfileInput {
                instance_profile_name: "web-profile".into(),
                ..Default::default()
            })
            .expect("create profile");
        assert!(profile.instance_profile_id.starts_with("AIPA"));
        assert_eq!(
            profile.arn,
            "arn:aws:iam::000000000000:instance-profile/web-profile"
        );
        assert!(is(
            control.create_instance_profile(CreateInstanceProfileInput {
                instance_profile_name: "WEB-PROFILE".into(),
                ..Default::default()
            }),
            |e| matches!(e, IdentityError::EntityAlreadyExists(_))
        ));
        control
            .add_role_to_instance_profile("web-profile", "web")
            .expect("add");
        assert!(is(
            control.add_role_to_instance_profile("web-profile", "db"),
            |e| matches!(e, IdentityError::LimitExceeded(_))
        ));
        assert!(is(
            control.add_role_to_instance_profile("nothing", "db"),
            |e| matches!(e, IdentityError::NoSuchEntity(_))
        ));
        let view = control.get_instance_profile("web-profile").expect("get");
        assert_eq!(view.roles, vec![web]);
        assert!(is(control.delete_role("web"), |e| matches!(
            e,
            IdentityError::DeleteConflict(_)
        )));
        assert!(is(control.delete_instance_profile("web-profile"), |e| {
            matches!(e, IdentityError::DeleteConflict(_))
        }));
        assert!(is(
            control.remove_role_from_instance_profile("web-profile", "db"),
            |e| matches!(e, IdentityError::NoSuchEntity(_))
        ));
        control
            .remove_role_from_instance_profile("web-profile", "web")
            .expect("remove");
        control.delete_role("web").expect("delete role");
        control
            .delete_instance_profile("web-profile")
            .expect("delete profile");
        assert!(control
            .list_instance_profiles(&ListInput::default())
            .expect("list")
            .items
            .is_empty());
    }
}

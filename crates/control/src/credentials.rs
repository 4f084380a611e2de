//! Who is calling, and the temporary credentials STS issues: GetCallerIdentity,
//! GetSessionToken, AssumeRole, and the role credentials an instance's metadata service hands
//! out.
//!
//! Invariants: every issued credential is committed to the store before it is returned, so it
//! survives a restart; a credential is accepted only with its own session token and only until
//! its expiration; records are purged a while after they expire (in the same transaction that
//! issues new ones, so the table never grows without bound).

use serde::{Deserialize, Serialize};

use crate::filter::{FilterField, Filterable};
use crate::iam::{find_profile, new_unique_id, validate_name, IdentityError, IdentityResult, Role};
use crate::kinds::Tables;
use crate::{Control, Txn};

const MILLIS_PER_SECOND: i64 = 1000;
/// An expired credential is still recognised (and refused as expired, not as unknown) this long.
const PURGE_AFTER_EXPIRY_MILLIS: i64 = 3600 * MILLIS_PER_SECOND;
const MIN_DURATION_SECONDS: u32 = 900;
const SESSION_TOKEN_DURATION_RANGE: std::ops::RangeInclusive<u32> = 900..=129_600;
const DEFAULT_SESSION_TOKEN_DURATION: u32 = 43_200;
/// AWS caps a session assumed with temporary role credentials ("role chaining") at one hour.
const ROLE_CHAINING_MAX_SECONDS: u32 = 3600;
const DEFAULT_ASSUME_ROLE_DURATION: u32 = 3600;
/// What the metadata service hands out: one-hour role sessions, replaced once fewer than
/// 15 minutes remain (AWS makes new ones available at least 5 minutes before expiry).
const INSTANCE_CREDENTIAL_SECONDS: u32 = 3600;
const INSTANCE_REFRESH_BEFORE_MILLIS: i64 = 15 * 60 * MILLIS_PER_SECOND;

/// What kind of key signed a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// A key from the configuration: the account's root user.
    LongTerm,
    /// From GetSessionToken.
    SessionToken,
    /// From AssumeRole, or from an instance's metadata service.
    AssumedRole,
}

/// The authenticated principal of a request, as GetCallerIdentity reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub account_id: String,
    /// `arn:aws:iam::ACCOUNT:root` or `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub arn: String,
    /// The account ID for root, `AROA…:SESSION` for an assumed role.
    pub user_id: String,
    pub access_key_id: String,
    pub kind: CredentialKind,
}

impl Caller {
    pub fn is_temporary(&self) -> bool {
        self.kind != CredentialKind::LongTerm
    }
}

/// An access key resolved for signature verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedKey {
    pub caller: Caller,
    pub secret_access_key: String,
}

/// Why an access key and session token pair is not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey,
    /// A forged token, a token of another key, a temporary key sent without its token, or a
    /// token sent with a long-term key.
    #[error("The security token included in the request is invalid.")]
    InvalidToken,
    #[error("The security token included in the request is expired")]
    Expired,
}

/// Temporary credentials, as STS returns them. `expiration` is in Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: i64,
}

/// AssumeRole's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumedRole {
    pub credentials: Credentials,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub assumed_role_arn: String,
    /// `AROA…:SESSION`.
    pub assumed_role_id: String,
}

/// AssumeRole's parameters that nimbus honours.
#[derive(Clone, Debug, Default)]
pub struct AssumeRoleInput {
    pub role_arn: String,
    pub role_session_name: String,
    pub duration_seconds: Option<u32>,
}

/// Role credentials served by an instance's metadata service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceRoleCredentials {
    pub role_name: String,
    pub credentials: Credentials,
    /// When these credentials were issued, in Unix milliseconds.
    pub issued: i64,
}

/// One issued temporary credential, stored so that it survives a restart.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TemporaryCredential {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub issued: i64,
    pub expiration: i64,
    pub kind: CredentialKind,
    pub principal_arn: String,
    pub user_id: String,
    /// The role of an assumed-role session.
    pub role_id: Option<String>,
    /// The instance whose metadata service hands these out.
    pub instance_id: Option<String>,
}

impl Filterable for TemporaryCredential {
    const FILTERS: &'static [FilterField<Self>] = &[];
}

impl TemporaryCredential {
    fn credentials(&self) -> Credentials {
        Credentials {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            session_token: self.session_token.clone(),
            expiration: self.expiration,
        }
    }
}

fn random_text(bytes: usize) -> String {
    use base64::Engine;
    let random: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::STANDARD.encode(random)
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who a new credential speaks for, and for how long.
struct Grant {
    kind: CredentialKind,
    principal_arn: String,
    user_id: String,
    role_id: Option<String>,
    instance_id: Option<String>,
    duration_seconds: u32,
}

/// Records a fresh credential (and drops those long expired) in `txn`.
fn issue(txn: &mut Txn, grant: Grant, now: i64) -> IdentityResult<TemporaryCredential> {
    let stale: Vec<String> = txn
        .state()
        .temporary_credentials()
        .values()
        .filter(|c| c.expiration + PURGE_AFTER_EXPIRY_MILLIS <= now)
        .map(|c| c.access_key_id.clone())
        .collect();
    for access_key_id in stale {
        txn.delete::<TemporaryCredential>(&access_key_id);
    }
    let credential = TemporaryCredential {
        access_key_id: new_unique_id("ASIA", 16),
        secret_access_key: random_text(30),
        session_token: random_text(96),
        issued: now,
        expiration: now + i64::from(grant.duration_seconds) * MILLIS_PER_SECOND,
        kind: grant.kind,
        principal_arn: grant.principal_arn,
        user_id: grant.user_id,
        role_id: grant.role_id,
        instance_id: grant.instance_id,
    };
    txn.put(credential.clone())?;
    Ok(credential)
}

fn duration_error(value: u32, member: &str, rule: &str) -> IdentityError {
    IdentityError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {rule}"
    ))
}

/// The session of `role` named `session_name`: its ARN and its assumed-role ID.
fn role_session(account_id: &str, role: &Role, session_name: &str) -> (String, String) {
    (
        format!(
            "arn:aws:sts::{account_id}:assumed-role/{}/{session_name}",
            role.role_name
        ),
        format!("{}:{session_name}", role.role_id),
    )
}

impl Control {
    /// The principal behind an access key, with the secret to check its signature, as of `now`
    /// (Unix milliseconds). Long-term keys come from the configuration; temporary ones must
    /// come with their own session token and must not have expired.
    pub fn resolve_access_key(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
        now: i64,
    ) -> Result<ResolvedKey, CredentialError> {
        let config = self.config();
        if let Some(configured) = config
            .credentials
            .iter()
            .find(|c| c.access_key_id == access_key_id)
        {
            let token_matches = match (configured.session_token.as_deref(), session_token) {
                (Some(expected), Some(given)) => {
                    constant_time_eq(expected.as_bytes(), given.as_bytes())
                }
                (None, None) => true,
                _ => false,
            };
            if !token_matches {
                return Err(CredentialError::InvalidToken);
            }
            return Ok(ResolvedKey {
                caller: Caller {
                    account_id: config.account_id.clone(),
                    arn: format!("arn:aws:iam::{}:root", config.account_id),
                    user_id: config.account_id.clone(),
                    access_key_id: access_key_id.to_owned(),
                    kind: CredentialKind::LongTerm,
                },
                secret_access_key: configured.secret_access_key.clone(),
            });
        }
        let state = self.read();
        let issued = state
            .temporary_credentials()
            .get(access_key_id)
            .ok_or(CredentialError::UnknownAccessKey)?;
        let token_matches = session_token.is_some_and(|token| {
            constant_time_eq(token.as_bytes(), issued.session_token.as_bytes())
        });
        if !token_matches {
            return Err(CredentialError::InvalidToken);
        }
        if issued.expiration <= now {
            return Err(CredentialError::Expired);
        }
        Ok(ResolvedKey {
            caller: Caller {
                account_id: config.account_id.clone(),
                arn: issued.principal_arn.clone(),
                user_id: issued.user_id.clone(),
                access_key_id: access_key_id.to_owned(),
                kind: issued.kind,
            },
            secret_access_key: issued.secret_access_key.clone(),
        })
    }

    /// GetSessionToken: credentials for the caller itself, 900..129600 s (default 43200).
    /// Refused with `AccessDenied` when called with temporary credentials, as STS does.
    pub fn get_session_token(
        &self,
        caller: &Caller,
        duration_seconds: Option<u32>,
    ) -> IdentityResult<Credentials> {
        self.get_session_token_at(caller, duration_seconds, nimbus_core::now_millis())
    }

    fn get_session_token_at(
        &self,
        caller: &Caller,
        duration_seconds: Option<u32>,
        now: i64,
    ) -> IdentityResult<Credentials> {
        let duration = duration_seconds.unwrap_or(DEFAULT_SESSION_TOKEN_DURATION);
        if !SESSION_TOKEN_DURATION_RANGE.contains(&duration) {
            return Err(duration_error(
                duration,
                "durationSeconds",
                "Member must have value between 900 and 129600",
            ));
        }
        if caller.is_temporary() {
            return Err(IdentityError::AccessDenied(
                "Cannot call GetSessionToken with session credentials".into(),
            ));
        }
        let grant = Grant {
            kind: CredentialKind::SessionToken,
            principal_arn: caller.arn.clone(),
            user_id: caller.user_id.clone(),
            role_id: None,
            instance_id: None,
            duration_seconds: duration,
        };
        self.mutate_with(|txn| issue(txn, grant, now))
            .map(|issued| issued.credentials())
    }

    /// AssumeRole: a session of the role named by `RoleArn`, for 900 s up to the role's
    /// `MaxSessionDuration` (one hour when the caller is itself a role session). A role that
    /// does not exist is `AccessDenied`, as in AWS. Trust policies are not evaluated.
    pub fn assume_role(
        &self,
        caller: &Caller,
        input: &AssumeRoleInput,
    ) -> IdentityResult<AssumedRole> {
        self.assume_role_at(caller, input, nimbus_core::now_millis())
    }

    fn assume_role_at(
        &self,
        caller: &Caller,
        input: &AssumeRoleInput,
        now: i64,
    ) -> IdentityResult<AssumedRole> {
        validate_name(&input.role_session_name, "roleSessionName", 2..=64)?;
        if input.role_arn.chars().count() < 20 {
            return Err(IdentityError::Validation(format!(
                "1 validation error detected: Value '{}' at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20",
                input.role_arn
            )));
        }
        let duration = input
            .duration_seconds
            .unwrap_or(DEFAULT_ASSUME_ROLE_DURATION);
        if duration < MIN_DURATION_SECONDS {
            return Err(duration_error(
                duration,
                "durationSeconds",
                "Member must have value greater than or equal to 900",
            ));
        }
        let account_id = self.config().account_id.clone();
        self.mutate_with(|txn| {
            let role = txn
                .state()
                .roles()
                .values()
                .find(|role| role.arn == input.role_arn)
                .cloned()
                .ok_or_else(|| {
                    IdentityError::AccessDenied(format!(
                        "User: {} is not authorized to perform: sts:AssumeRole on resource: {}",
                        caller.arn, input.role_arn
                    ))
                })?;
            if duration > role.max_session_duration {
                return Err(IdentityError::Validation(
                    "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                        .into(),
                ));
            }
            if caller.kind == CredentialKind::AssumedRole && duration > ROLE_CHAINING_MAX_SECONDS {
                return Err(IdentityError::Validation(
                    "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
                        .into(),
                ));
            }
            let (arn, assumed_role_id) = role_session(&account_id, &role, &input.role_session_name);
            let grant = Grant {
                kind: CredentialKind::AssumedRole,
                principal_arn: arn.clone(),
                user_id: assumed_role_id.clone(),
                role_id: Some(role.role_id.clone()),
                instance_id: None,
                duration_seconds: duration,
            };
            let issued = issue(txn, grant, now)?;
            Ok(AssumedRole {
                credentials: issued.credentials(),
                assumed_role_arn: arn,
                assumed_role_id,
            })
        })
    }

    /// The credentials an instance's metadata service serves for the role of its instance
    /// profile (session named after the instance), issued anew once the current ones come
    /// within 15 minutes of expiring. `None` when the instance has no profile or the profile
    /// has no role.
    pub fn instance_role_credentials(
        &self,
        instance_id: &str,
    ) -> IdentityResult<Option<InstanceRoleCredentials>> {
        self.instance_role_credentials_at(instance_id, nimbus_core::now_millis())
    }

    fn instance_role_credentials_at(
        &self,
        instance_id: &str,
        now: i64,
    ) -> IdentityResult<Option<InstanceRoleCredentials>> {
        // Most metadata requests find current credentials: those need only the shared lock.
        {
            let state = self.read();
            let Some(role) = instance_role(&state, instance_id) else {
                return Ok(None);
            };
            if let Some(current) = fresh_session(&state, &role, instance_id, now) {
                return Ok(Some(instance_credentials(&role, current)));
            }
        }
        let account_id = self.config().account_id.clone();
        self.mutate_with(|txn| match instance_role(txn.state(), instance_id) {
            Some(role) => instance_session(txn, &account_id, &role, instance_id, now).map(Some),
            None => Ok(None),
        })
    }
}

/// The role of the instance profile an instance runs with, if any.
fn instance_role(state: &crate::State, instance_id: &str) -> Option<Role> {
    let profile = state
        .instances()
        .get(instance_id)?
        .iam_instance_profile
        .as_ref()?;
    let role_id = state
        .instance_profiles()
        .get(&profile.id)?
        .role_id
        .as_ref()?;
    state.roles().get(role_id).cloned()
}

/// The instance's session of `role` with more than 15 minutes left, if any.
fn fresh_session(
    state: &crate::State,
    role: &Role,
    instance_id: &str,
    now: i64,
) -> Option<TemporaryCredential> {
    state
        .temporary_credentials()
        .values()
        .filter(|c| {
            c.instance_id.as_deref() == Some(instance_id)
                && c.role_id.as_deref() == Some(role.role_id.as_str())
                && c.expiration - INSTANCE_REFRESH_BEFORE_MILLIS > now
        })
        .max_by_key(|c| c.expiration)
        .cloned()
}

fn instance_credentials(role: &Role, issued: TemporaryCredential) -> InstanceRoleCredentials {
    InstanceRoleCredentials {
        role_name: role.role_name.clone(),
        credentials: issued.credentials(),
        issued: issued.issued,
    }
}

/// The instance's current session of `role`, or a new one when none has 15 minutes left.
fn instance_session(
    txn: &mut Txn,
    account_id: &str,
    role: &Role,
    instance_id: &str,
    now: i64,
) -> IdentityResult<InstanceRoleCredentials> {
    let issued = match fresh_session(txn.state(), role, instance_id, now) {
        Some(credential) => credential,
        None => {
            let (arn, user_id) = role_session(account_id, role, instance_id);
            let grant = Grant {
                kind: CredentialKind::AssumedRole,
                principal_arn: arn,
                user_id,
                role_id: Some(role.role_id.clone()),
                instance_id: Some(instance_id.to_owned()),
                duration_seconds: INSTANCE_CREDENTIAL_SECONDS,
            };
            issue(txn, grant, now)?
        }
    };
    Ok(instance_credentials(role, issued))
}

/// The instance profile named in RunInstances `IamInstanceProfile`, by ARN or by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceProfileSpecification {
    pub arn: Option<String>,
    pub name: Option<String>,
}

/// The instance profile an instance runs with, as DescribeInstances shows it, and the
/// association that gave it (DescribeIamInstanceProfileAssociations).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstanceProfileAssociation {
    pub arn: String,
    pub id: String,
    /// `iip-assoc-…`; records older than associations got one when they were loaded.
    pub association_id: String,
    /// When the profile was associated (Unix milliseconds).
    pub associated_at: i64,
}

/// Resolves RunInstances' `IamInstanceProfile`; an unknown profile is `InvalidParameterValue`.
/// An empty `Arn` or `Name` is no profile, as EC2 reads it (Packer sends `Name=""` when no
/// profile is configured).
pub(crate) fn resolve_instance_profile(
    state: &crate::State,
    spec: &InstanceProfileSpecification,
) -> crate::Result<Option<InstanceProfileAssociation>> {
    let given = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
    let (found, member, label, shown) = match (given(&spec.arn), given(&spec.name)) {
        (Some(arn), _) => (
            state.instance_profiles().values().find(|p| p.arn == arn),
            "arn",
            "ARN",
            arn,
        ),
        (None, Some(name)) => (
            find_profile(state.instance_profiles(), &name),
            "name",
            "name",
            name,
        ),
        (None, None) => return Ok(None),
    };
    let found = found.ok_or_else(|| {
        crate::Error::InvalidParameterValue(format!(
            "Value ({shown}) for parameter iamInstanceProfile.{member} is invalid. Invalid IAM Instance Profile {label}"
        ))
    })?;
    Ok(Some(InstanceProfileAssociation {
        arn: found.arn.clone(),
        id: found.instance_profile_id.clone(),
        association_id: nimbus_core::new_id("iip-assoc"),
        associated_at: nimbus_core::now_millis(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::testing::{control, role};

    const HOUR_MILLIS: i64 = 3600 * MILLIS_PER_SECOND;

    fn root(control: &Control) -> Caller {
        control
            .resolve_access_key("test", None, 0)
            .expect("configured key")
            .caller
    }

    fn assume(role_arn: &str, duration_seconds: Option<u32>) -> AssumeRoleInput {
        AssumeRoleInput {
            role_arn: role_arn.into(),
            role_session_name: "session-1".into(),
            duration_seconds,
        }
    }

    /// Packer sends `IamInstanceProfile.Name=""` when no profile is configured: no profile.
    #[tokio::test]
    async fn an_empty_profile_name_or_arn_is_no_profile() {
        let h = crate::testkit::Harness::new().await;
        let state = h.control.read();
        let spec = |arn: Option<&str>, name: Option<&str>| InstanceProfileSpecification {
            arn: arn.map(str::to_owned),
            name: name.map(str::to_owned),
        };
        for empty in [
            spec(None, Some("")),
            spec(Some(""), None),
            spec(Some(""), Some("")),
        ] {
            assert_eq!(
                resolve_instance_profile(&state, &empty).expect("no profile"),
                None
            );
        }
        let unknown = resolve_instance_profile(&state, &spec(Some(""), Some("web")));
        assert!(
            matches!(&unknown, Err(crate::Error::InvalidParameterValue(m)) if m.contains("(web)")),
            "{unknown:?}"
        );
    }

    #[tokio::test]
    async fn access_keys_resolve_to_their_principal_only_with_their_own_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let control = control(dir.path()).await;
        let root = root(&control);
        assert_eq!(root.arn, "arn:aws:iam::000000000000:root");
        assert_eq!(root.user_id, "000000000000");
        assert!(!root.is_temporary());
        let web = role(&control, "web", None);
        let now = 1_000 * HOUR_MILLIS;
        let session = control
            .assume_role_at(&root, &assume(&web.arn, Some(900)), now)
            .expect("assume");
        let key = &session.credentials.access_key_id;
        let token = session.credentials.session_token.as_str();
        assert!(key.starts_with("ASIA") && key.len() == 20);
        assert_eq!(
            session.credentials.expiration,
            now + 900 * MILLIS_PER_SECOND
        );
        assert_eq!(
            session.assumed_role_arn,
            "arn:aws:sts::000000000000:assumed-role/web/session-1"
        );
        assert_eq!(
            session.assumed_role_id,
            format!("{}:session-1", web.role_id)
        );

        let resolved = control
            .resolve_access_key(key, Some(token), now)
            .expect("temporary key with its token");
        assert_eq!(resolved.caller.arn, session.assumed_role_arn);
        assert_eq!(resolved.caller.user_id, session.assumed_role_id);
        assert_eq!(resolved.caller.kind, CredentialKind::AssumedRole);
        assert_eq!(
            resolved.secret_access_key,
            session.credentials.secret_access_key
        );

        let refused = |key: &str, token: Option<&str>, at: i64| {
            control.resolve_access_key(key, token, at).err()
        };
        assert_eq!(
            refused(key, Some("forged"), now),
            Some(CredentialError::InvalidToken)
        );
        assert_eq!(refused(key, None, now), Some(CredentialError::InvalidToken));
        assert_eq!(
            refused("test", Some(token), now),
            Some(CredentialError::InvalidToken)
        );
        assert_eq!(
            refused("ASIANOSUCHKEY0000000", Some(token), now),
            Some(CredentialError::UnknownAccessKey)
        );
        let expiry = session.credentials.expiration;
        assert!(refused(key, Some(token), expiry - 1).is_none());
        assert_eq!(
            refused(key, Some(token), expiry),
            Some(CredentialError::Expired)
        );
        // A forged token is refused as forged even once the key has expired.
        assert_eq!(
            refused(key, Some("forged"), expiry),
            Some(CredentialError::InvalidToken)
        );

        // Issued credentials survive a restart.
        drop(control);
        let reopened = super::super::iam::testing::control(dir.path()).await;
        assert!(reopened.resolve_access_key(key, Some(token), now).is_ok());
    }

    #[tokio::test]
    async fn assume_role_enforces_session_durations_and_role_existence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let control = control(dir.path()).await;
        let root = root(&control);
        let short = role(&control, "short", None);
        let long = role(&control, "long", Some(43200));
        let now = 1_000 * HOUR_MILLIS;
        let validation = |input: AssumeRoleInput, caller: &Caller| {
            matches!(
                control.assume_role_at(caller, &input, now),
                Err(IdentityError::Validation(_))
            )
        };
        let default = control
            .assume_role_at(&root, &assume(&short.arn, None), now)
            .expect("default duration");
        assert_eq!(default.credentials.expiration, now + HOUR_MILLIS);
        assert!(validation(assume(&short.arn, Some(899)), &root));
        assert!(validation(assume(&short.arn, Some(3601)), &root));
        assert!(control
            .assume_role_at(&root, &assume(&long.arn, Some(43200)), now)
            .is_ok());
        assert!(validation(assume(&long.arn, Some(43201)), &root));
        assert!(validation(
            AssumeRoleInput {
                role_session_name: "x".into(),
                ..assume(&short.arn, None)
            },
            &root
        ));

        // Role chaining: a role session may assume a role for at most one hour.
        let chained = control
            .resolve_access_key(
                &default.credentials.access_key_id,
                Some(&default.credentials.session_token),
                now,
            )
            .expect("session")
            .caller;
        assert!(validation(assume(&long.arn, Some(7200)), &chained));
        assert!(control
            .assume_role_at(&chained, &assume(&long.arn, Some(3600)), now)
            .is_ok());

        let missing = "arn:aws:iam::000000000000:role/missing";
        match control.assume_role_at(&root, &assume(missing, None), now) {
            Err(IdentityError::AccessDenied(message)) => assert_eq!(
                message,
                format!("User: arn:aws:iam::000000000000:root is not authorized to perform: sts:AssumeRole on resource: {missing}")
            ),
            other => panic!("expected AccessDenied, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn session_tokens_speak_for_the_caller_and_refuse_temporary_callers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let control = control(dir.path()).await;
        let root = root(&control);
        let now = 1_000 * HOUR_MILLIS;
        let credentials = control
            .get_session_token_at(&root, None, now)
            .expect("session token");
        assert_eq!(credentials.expiration, now + 12 * HOUR_MILLIS);
        let session = control
            .resolve_access_key(
                &credentials.access_key_id,
                Some(&credentials.session_token),
                now,
            )
            .expect("resolve")
            .caller;
        assert_eq!(session.arn, root.arn);
        assert_eq!(session.kind, CredentialKind::SessionToken);
        assert!(matches!(
            control.get_session_token_at(&session, None, now),
            Err(IdentityError::AccessDenied(_))
        ));
        for (duration, ok) in [(899, false), (900, true), (129_600, true), (129_601, false)] {
            let result = control.get_session_token_at(&root, Some(duration), now);
            assert_eq!(result.is_ok(), ok, "{duration}");
        }
    }

    #[tokio::test]
    async fn expired_credentials_are_purged_when_new_ones_are_issued() {
        let dir = tempfile::tempdir().expect("tempdir");
        let control = control(dir.path()).await;
        let root = root(&control);
        let now = 1_000 * HOUR_MILLIS;
        let old = control
            .get_session_token_at(&root, Some(900), now)
            .expect("old");
        let expired_at = old.expiration;
        control
            .get_session_token_at(&root, Some(900), expired_at + PURGE_AFTER_EXPIRY_MILLIS - 1)
            .expect("while the old one is still remembered");
        assert!(control
            .read()
            .temporary_credentials()
            .contains_key(&old.access_key_id));
        control
            .get_session_token_at(&root, Some(900), expired_at + PURGE_AFTER_EXPIRY_MILLIS)
            .expect("after the retention");
        assert!(!control
            .read()
            .temporary_credentials()
            .contains_key(&old.access_key_id));
    }

    #[tokio::test]
    async fn instance_sessions_are_reused_then_replaced_before_expiry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let control = control(dir.path()).await;
        let web = role(&control, "web", None);
        let instance = "i-0123456789abcdef0";
        let at = |now: i64| {
            control
                .mutate_with(|txn| instance_session(txn, "000000000000", &web, instance, now))
                .expect("instance session")
        };
        let start = 1_000 * HOUR_MILLIS;
        let first = at(start);
        assert_eq!(first.role_name, "web");
        assert_eq!(first.issued, start);
        let caller = control
            .resolve_access_key(
                &first.credentials.access_key_id,
                Some(&first.credentials.session_token),
                start,
            )
            .expect("resolve")
            .caller;
        assert_eq!(
            caller.arn,
            format!("arn:aws:sts::000000000000:assumed-role/web/{instance}")
        );
        let refresh_at = first.credentials.expiration - INSTANCE_REFRESH_BEFORE_MILLIS;
        assert_eq!(at(refresh_at - 1), first);
        let second = at(refresh_at);
        assert_ne!(
            second.credentials.access_key_id,
            first.credentials.access_key_id
        );
        // AWS's promise: new credentials at least five minutes before the old ones expire.
        assert!(first.credentials.expiration - second.issued >= 5 * 60 * MILLIS_PER_SECOND);
    }
}

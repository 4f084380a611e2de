//! Who besides its owner may use an image (its launch permission) or a snapshot (its
//! create-volume permission): the group `all` and account IDs. Modify/Reset/Describe
//! ImageAttribute and SnapshotAttribute change and read them; DescribeImages'
//! `ExecutableUsers` and `is-public`, and DescribeSnapshots' `RestorableByUserIds`, read them.
//! nimbus serves one account, so a permission changes what those calls show, not who can
//! call.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::describe::existing;
use crate::{Control, Error, Resource, Result};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// The group `all`: every account.
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub user_ids: BTreeSet<String>,
}

/// One entry of a permission: the group `all` or an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grantee {
    All,
    Account(String),
}

impl Grantee {
    /// A `Group` / `UserId` pair as requests carry it: `all`, or twelve digits.
    pub fn parse(group: Option<&str>, user_id: Option<&str>) -> Result<Grantee> {
        let invalid = |what: &str, value: &str| {
            Error::InvalidAttributeItemValue(format!(
                "Invalid attribute item value \"{value}\" for {what} item type."
            ))
        };
        match (group, user_id) {
            (Some("all"), None) => Ok(Grantee::All),
            (Some(group), None) => Err(invalid("group", group)),
            (None, Some(id)) if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Grantee::Account(id.to_owned()))
            }
            (None, Some(id)) => Err(invalid("userId", id)),
            _ => Err(Error::InvalidParameterCombination(
                "Each permission names either a Group or a UserId.".into(),
            )),
        }
    }
}

impl Permissions {
    /// Adds then removes, as one Modify…Attribute does.
    pub fn change(&mut self, add: &[Grantee], remove: &[Grantee]) {
        for grantee in add {
            match grantee {
                Grantee::All => self.public = true,
                Grantee::Account(id) => {
                    self.user_ids.insert(id.clone());
                }
            }
        }
        for grantee in remove {
            match grantee {
                Grantee::All => self.public = false,
                Grantee::Account(id) => {
                    self.user_ids.remove(id);
                }
            }
        }
    }

    /// Whether `user` (an account ID, `self` for the owner, or `all`) may use the resource
    /// owned by `owner`.
    pub fn allows(&self, user: &str, owner: &str) -> bool {
        match user {
            "self" => true,
            "all" => self.public,
            account => account == owner || self.public || self.user_ids.contains(account),
        }
    }
}

impl Control {
    /// Changes one existing image or snapshot in one transaction (nothing with `dry_run`),
    /// answering it as changed.
    pub fn change_existing<T: Resource + Clone>(
        &self,
        id: &str,
        dry_run: bool,
        change: impl FnOnce(&mut T) -> Result<()>,
    ) -> Result<T> {
        self.mutate(|txn| {
            let mut item = existing::<T>(txn.state(), id)?.clone();
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            change(&mut item)?;
            txn.put(item.clone())?;
            Ok(item)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_add_remove_and_allow() {
        let mut permissions = Permissions::default();
        let friend = Grantee::Account("123456789012".into());
        permissions.change(&[Grantee::All, friend.clone()], &[]);
        assert!(permissions.public && permissions.allows("999999999999", "000000000000"));
        permissions.change(&[], &[Grantee::All]);
        assert!(permissions.allows("123456789012", "000000000000"));
        assert!(!permissions.allows("999999999999", "000000000000"));
        assert!(permissions.allows("self", "000000000000") && !permissions.allows("all", "0"));
        permissions.change(&[], &[friend]);
        assert_eq!(permissions, Permissions::default());
    }

    #[test]
    fn grantees_are_all_or_an_account() {
        assert_eq!(Grantee::parse(Some("all"), None).unwrap(), Grantee::All);
        assert!(Grantee::parse(None, Some("123456789012")).is_ok());
        for (group, user) in [
            (Some("everyone"), None),
            (None, Some("12345")),
            (None, None),
            (Some("all"), Some("123456789012")),
        ] {
            assert!(Grantee::parse(group, user).is_err(), "{group:?} {user:?}");
        }
    }
}

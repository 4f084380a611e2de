//! Instance profile associations: Associate/Replace/DisassociateIamInstanceProfile and
//! DescribeIamInstanceProfileAssociations.
//!
//! An instance's association lives in its record (`Instance::iam_instance_profile`). The
//! metadata service reads that record on every request and issues credentials for the role
//! of the profile it names, so a change is what the guest's next `iam/security-credentials/`
//! request sees: the change is complete when the call commits. The calls answer
//! `associating` / `disassociating` as EC2 does; Describe shows `associated`.

use crate::credentials::{resolve_instance_profile, InstanceProfileSpecification};
use crate::describe::{self, existing, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::instances::{Instance, InstanceState};
use crate::kinds::Tables;
use crate::{Control, Error, Result, State};

/// DescribeIamInstanceProfileAssociations' MaxResults bounds (its IDs exclude MaxResults).
const DESCRIBE_PAGING: Paging = Paging::within_without_ids(5, 1000, "associationIds");

/// One association as EC2 answers it (`IamInstanceProfileAssociation`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssociationRow {
    pub association_id: String,
    pub instance_id: String,
    pub profile_arn: String,
    pub profile_id: String,
    /// `associating`, `associated`, `disassociating` (or `disassociated`).
    pub state: &'static str,
    /// Unix milliseconds.
    pub timestamp: i64,
}

impl Filterable for AssociationRow {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("instance-id", |a, _| vec![a.instance_id.clone()]),
        ("state", |a, _| vec![a.state.to_owned()]),
    ];
}

fn row(instance: &Instance, state: &'static str) -> Option<AssociationRow> {
    let profile = instance.iam_instance_profile.as_ref()?;
    Some(AssociationRow {
        association_id: profile.association_id.clone(),
        instance_id: instance.instance_id.clone(),
        profile_arn: profile.arn.clone(),
        profile_id: profile.id.clone(),
        state,
        timestamp: profile.associated_at,
    })
}

/// Instances that may hold an association: a terminated one has none left.
fn holds_associations(instance: &Instance) -> bool {
    !matches!(
        instance.state,
        InstanceState::ShuttingDown | InstanceState::Terminated
    )
}

/// The live instance holding association `association_id`.
fn holder<'a>(state: &'a State, association_id: &str) -> Result<&'a Instance> {
    state
        .instances()
        .values()
        .filter(|i| holds_associations(i))
        .find(|i| {
            i.iam_instance_profile
                .as_ref()
                .is_some_and(|p| p.association_id == association_id)
        })
        .ok_or_else(|| {
            Error::AssociationNotFound(format!(
                "The association ID '{association_id}' does not exist"
            ))
        })
}

/// The profile a request names, which must name one.
fn named_profile(
    state: &State,
    spec: &InstanceProfileSpecification,
) -> Result<crate::credentials::InstanceProfileAssociation> {
    resolve_instance_profile(state, spec)?.ok_or_else(|| {
        Error::MissingParameter("IamInstanceProfile.Arn or IamInstanceProfile.Name".into())
    })
}

impl Control {
    /// AssociateIamInstanceProfile: an instance holds one association at a time.
    pub fn associate_iam_instance_profile(
        &self,
        instance_id: &str,
        spec: &InstanceProfileSpecification,
    ) -> Result<AssociationRow> {
        self.mutate(|txn| {
            let mut instance = existing::<Instance>(txn.state(), instance_id)?.clone();
            if !holds_associations(&instance) {
                return Err(Error::IncorrectInstanceState(format!(
                    "The instance '{instance_id}' is not in a valid state for this operation."
                )));
            }
            if let Some(current) = &instance.iam_instance_profile {
                return Err(Error::IncorrectState(format!(
                    "There is an existing association for instance {instance_id}: {}",
                    current.association_id
                )));
            }
            instance.iam_instance_profile = Some(named_profile(txn.state(), spec)?);
            let answer = row(&instance, "associating");
            txn.put(instance)?;
            answer.ok_or_else(|| Error::Internal("an association was not recorded".into()))
        })
    }

    /// ReplaceIamInstanceProfileAssociation: the instance runs with another profile, under a
    /// new association ID.
    pub fn replace_iam_instance_profile_association(
        &self,
        association_id: &str,
        spec: &InstanceProfileSpecification,
    ) -> Result<AssociationRow> {
        self.mutate(|txn| {
            let mut instance = holder(txn.state(), association_id)?.clone();
            instance.iam_instance_profile = Some(named_profile(txn.state(), spec)?);
            let answer = row(&instance, "associating");
            txn.put(instance)?;
            answer.ok_or_else(|| Error::Internal("an association was not recorded".into()))
        })
    }

    /// DisassociateIamInstanceProfile: the instance runs without a profile (its metadata has
    /// no `iam/` tree from its next request on).
    pub fn disassociate_iam_instance_profile(
        &self,
        association_id: &str,
    ) -> Result<AssociationRow> {
        self.mutate(|txn| {
            let mut instance = holder(txn.state(), association_id)?.clone();
            let answer = row(&instance, "disassociating");
            instance.iam_instance_profile = None;
            txn.put(instance)?;
            answer.ok_or_else(|| Error::Internal("an association was not recorded".into()))
        })
    }

    /// DescribeIamInstanceProfileAssociations: the associations of live instances; the
    /// query's IDs are association IDs.
    pub fn describe_iam_instance_profile_associations(
        &self,
        query: &Query,
    ) -> Result<Page<AssociationRow>> {
        let state = self.read();
        let mut rows: Vec<AssociationRow> = (state.instances().values())
            .filter(|i| holds_associations(i))
            .filter_map(|i| row(i, "associated"))
            .collect();
        if let Some(missing) =
            (query.ids.iter()).find(|id| !rows.iter().any(|r| r.association_id == **id))
        {
            return Err(Error::AssociationNotFound(format!(
                "The association ID '{missing}' does not exist"
            )));
        }
        rows.retain(|r| query.ids.is_empty() || query.ids.contains(&r.association_id));
        rows.sort_by(|a, b| a.association_id.cmp(&b.association_id));
        Ok(describe::describe_rows(
            rows,
            |r| &r.association_id,
            self.config(),
            query,
            DESCRIBE_PAGING,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::CreateInstanceProfileInput;
    use crate::testkit::Harness;

    fn profile(h: &Harness, name: &str) -> InstanceProfileSpecification {
        let input = CreateInstanceProfileInput {
            instance_profile_name: name.into(),
            path: None,
            tags: Vec::new(),
        };
        h.control.create_instance_profile(input).expect("profile");
        InstanceProfileSpecification {
            arn: None,
            name: Some(name.into()),
        }
    }

    #[tokio::test]
    async fn an_instance_holds_one_association_that_can_be_replaced_and_removed() {
        let h = Harness::new().await;
        let instance = h.run_instance().instance_id;
        let (web, batch) = (profile(&h, "web"), profile(&h, "batch"));
        let first = h
            .control
            .associate_iam_instance_profile(&instance, &web)
            .expect("associate");
        assert_eq!(first.state, "associating");
        assert!(first.association_id.starts_with("iip-assoc-"));
        let twice = h.control.associate_iam_instance_profile(&instance, &batch);
        assert!(matches!(twice, Err(Error::IncorrectState(_))), "{twice:?}");
        let listed = h
            .control
            .describe_iam_instance_profile_associations(&Query::default())
            .expect("describe")
            .0;
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].state, listed[0].profile_arn.as_str()),
            ("associated", first.profile_arn.as_str())
        );
        let replaced = h
            .control
            .replace_iam_instance_profile_association(&first.association_id, &batch)
            .expect("replace");
        assert_ne!(replaced.association_id, first.association_id);
        assert!(replaced.profile_arn.ends_with("/batch"));
        let gone = h
            .control
            .disassociate_iam_instance_profile(&first.association_id);
        assert!(
            matches!(gone, Err(Error::AssociationNotFound(_))),
            "{gone:?}"
        );
        let removed = h
            .control
            .disassociate_iam_instance_profile(&replaced.association_id)
            .expect("disassociate");
        assert_eq!(removed.state, "disassociating");
        assert!(h.control.read().instances()[&instance]
            .iam_instance_profile
            .is_none());
        let unknown = Query {
            ids: vec![replaced.association_id],
            ..Query::default()
        };
        let described = h
            .control
            .describe_iam_instance_profile_associations(&unknown);
        assert!(matches!(described, Err(Error::AssociationNotFound(_))));
    }

    #[test]
    fn older_records_get_an_association_dated_from_their_launch() {
        let mut record = serde_json::json!({
            "launch_time": 1234,
            "iam_instance_profile": {"arn": "arn:aws:iam::0:instance-profile/p", "id": "AIPA1"},
        });
        crate::instances::migrate_profile_association(&mut record).expect("migrate");
        let profile = &record["iam_instance_profile"];
        assert!(profile["association_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("iip-assoc-")));
        assert_eq!(profile["associated_at"], 1234);
        let mut none = serde_json::json!({"launch_time": 1, "iam_instance_profile": null});
        crate::instances::migrate_profile_association(&mut none).expect("no profile");
        assert!(none["iam_instance_profile"].is_null());
    }
}

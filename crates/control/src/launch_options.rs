//! The launch parameters that mainstream tools send on every launch, most of them with their
//! default values (Terraform's `aws_instance` sends `DisableApiTermination`, `EbsOptimized`,
//! `EnclaveOptions` and, for `t3` types, `CreditSpecification`; Packer sends `EbsOptimized`).
//!
//! The rule: a parameter sent with its default value is accepted; a non-default value is
//! honoured for real or refused with `UnsupportedOperation` naming it, never ignored. RunInstances
//! and launch template data carry these members under the same names, so both read them into
//! [`LaunchOptionsInput`] and check them here: a template is checked at its creation for what
//! needs no instance type ([`LaunchOptionsInput::check`]), a launch for its type
//! ([`LaunchOptionsInput::for_type`]).
//!
//! Honoured: termination and stop protection, `EbsOptimized` (stored and shown: every volume
//! has its own data path in nimbus, so every instance is as an EBS-optimized one), CPU credits
//! of burstable types (stored and shown: nimbus keeps no credit balance, so no instance is
//! throttled, as with `unlimited`) and the capacity reservation preference `open` / `none`
//! (nimbus has no capacity reservations, so both launch the same way), and
//! `HibernationOptions.Configured` (StopInstances `Hibernate` saves the guest's memory; see
//! `hibernation.rs`).

use serde::{Deserialize, Serialize};

use crate::catalog::InstanceType;
use crate::describe::{self, existing, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::instances::{Instance, InstanceState};
use crate::kinds::Tables;
use crate::{Control, Error, Result};

/// DescribeInstanceCreditSpecifications's MaxResults bounds (not with `InstanceIds`).
const CREDIT_SPECIFICATIONS_PAGING: Paging = Paging::within_without_ids(5, 1000, "InstanceIds");

/// `CreditSpecification.CpuCredits` of a burstable performance instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuCredits {
    Standard,
    Unlimited,
}

impl CpuCredits {
    pub fn as_str(self) -> &'static str {
        match self {
            CpuCredits::Standard => "standard",
            CpuCredits::Unlimited => "unlimited",
        }
    }

    /// As EC2 reads it: `standard` or `unlimited`, in any case.
    pub fn parse(value: &str) -> Result<CpuCredits> {
        match value.to_ascii_lowercase().as_str() {
            "standard" => Ok(CpuCredits::Standard),
            "unlimited" => Ok(CpuCredits::Unlimited),
            _ => Err(Error::InvalidParameterValue(format!(
                "Value ({value}) for parameter CpuCredits is invalid. Valid values: standard, unlimited."
            ))),
        }
    }

    /// AWS's default for a type: `standard` for T2, `unlimited` for T3 and T3a; none for a
    /// type that is not burstable.
    pub fn default_for(instance_type: &InstanceType) -> Option<CpuCredits> {
        match instance_type.family() {
            _ if !instance_type.burstable => None,
            "t2" => Some(CpuCredits::Standard),
            _ => Some(CpuCredits::Unlimited),
        }
    }
}

/// `CapacityReservationSpecification.CapacityReservationPreference`. nimbus has no capacity
/// reservations, so `open` and `none` launch alike; `capacity-reservations-only` is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CapacityReservationPreference {
    #[default]
    Open,
    None,
}

impl CapacityReservationPreference {
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityReservationPreference::Open => "open",
            CapacityReservationPreference::None => "none",
        }
    }
}

/// What an instance keeps of these parameters, changed later by ModifyInstanceAttribute
/// (protection, EBS optimization) and ModifyInstanceCreditSpecification.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceOptions {
    /// TerminateInstances is refused (`OperationNotPermitted`) while set.
    pub disable_api_termination: bool,
    /// StopInstances is refused (`OperationNotPermitted`) while set.
    pub disable_api_stop: bool,
    pub ebs_optimized: bool,
    /// Set when the launch or ModifyInstanceCreditSpecification chose; otherwise the type's
    /// default (see [`InstanceOptions::cpu_credits`]).
    pub cpu_credits: Option<CpuCredits>,
    pub capacity_reservation_preference: CapacityReservationPreference,
    /// `HibernationOptions.Configured`: StopInstances may hibernate the instance.
    #[serde(default)]
    pub hibernation_configured: bool,
}

impl InstanceOptions {
    /// The credit option of an instance of `instance_type`: the one chosen, else the type's
    /// default; `None` for a type that is not burstable.
    pub fn cpu_credits(&self, instance_type: &InstanceType) -> Option<CpuCredits> {
        let default = CpuCredits::default_for(instance_type)?;
        Some(self.cpu_credits.unwrap_or(default))
    }
}

/// These members of RunInstances and of `RequestLaunchTemplateData`, which name them alike.
/// A nested member nimbus does not honour at all (`CapacityReservationTarget`) is refused by
/// name as an unknown field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LaunchOptionsInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_api_termination: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_api_stop: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebs_optimized: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit_specification: Option<CreditSpecificationInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enclave_options: Option<EnclaveOptionsInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hibernation_options: Option<HibernationOptionsInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_reservation_specification: Option<CapacityReservationSpecificationInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_dns_name_options: Option<PrivateDnsNameOptionsInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_options: Option<CpuOptionsInput>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreditSpecificationInput {
    pub cpu_credits: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct EnclaveOptionsInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct HibernationOptionsInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configured: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CapacityReservationSpecificationInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_reservation_preference: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PrivateDnsNameOptionsInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_resource_name_dns_a_record: Option<bool>,
    #[serde(
        rename = "EnableResourceNameDnsAAAARecord",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_resource_name_dns_aaaa_record: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CpuOptionsInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub core_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads_per_core: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amd_sev_snp: Option<String>,
}

/// Refuses `name=value` unless `value` is the one nimbus honours.
fn only<T: PartialEq + std::fmt::Display>(name: &str, value: Option<T>, honoured: T) -> Result<()> {
    match value {
        Some(value) if value != honoured => {
            Err(Error::unsupported_parameter(&format!("{name}={value}")))
        }
        _ => Ok(()),
    }
}

impl LaunchOptionsInput {
    /// The values nimbus refuses whatever the instance type: enclaves, capacity
    /// reservations, resource-name hostnames and their DNS records, SEV-SNP.
    pub fn check(&self) -> Result<()> {
        if let Some(enclave) = &self.enclave_options {
            only("EnclaveOptions.Enabled", enclave.enabled, false)?;
        }
        self.capacity_reservation_preference()?;
        if let Some(dns) = &self.private_dns_name_options {
            only(
                "PrivateDnsNameOptions.HostnameType",
                dns.hostname_type.as_deref(),
                "ip-name",
            )?;
            only(
                "PrivateDnsNameOptions.EnableResourceNameDnsARecord",
                dns.enable_resource_name_dns_a_record,
                false,
            )?;
            only(
                "PrivateDnsNameOptions.EnableResourceNameDnsAAAARecord",
                dns.enable_resource_name_dns_aaaa_record,
                false,
            )?;
        }
        if let Some(cpu) = &self.cpu_options {
            only(
                "CpuOptions.AmdSevSnp",
                cpu.amd_sev_snp.as_deref(),
                "disabled",
            )?;
        }
        if let Some(credits) = &self.credit_specification {
            CpuCredits::parse(&credits.cpu_credits)?;
        }
        Ok(())
    }

    fn capacity_reservation_preference(&self) -> Result<CapacityReservationPreference> {
        let preference = (self.capacity_reservation_specification.as_ref())
            .and_then(|spec| spec.capacity_reservation_preference.as_deref());
        match preference {
            None | Some("open") => Ok(CapacityReservationPreference::Open),
            Some("none") => Ok(CapacityReservationPreference::None),
            Some(other) => Err(Error::unsupported_parameter(&format!(
                "CapacityReservationSpecification.CapacityReservationPreference={other}"
            ))),
        }
    }

    /// What a launch of `instance_type` records: [`check`](Self::check), then the members that
    /// depend on the type (CPU credits for burstable types only, `CpuOptions` matching the
    /// type's cores and threads).
    pub fn for_type(&self, instance_type: &InstanceType) -> Result<InstanceOptions> {
        self.check()?;
        let cpu_credits = match &self.credit_specification {
            Some(credits) => {
                let credits = CpuCredits::parse(&credits.cpu_credits)?;
                if !instance_type.burstable {
                    return Err(Error::InvalidParameterCombination(format!(
                        "The instance type {} does not support CPU credits: CreditSpecification \
                         applies to burstable performance instances (T2, T3, T3a) only.",
                        instance_type.name
                    )));
                }
                Some(credits)
            }
            None => None,
        };
        if let Some(cpu) = &self.cpu_options {
            only(
                "CpuOptions.CoreCount",
                cpu.core_count,
                i64::from(instance_type.default_cores()),
            )?;
            only(
                "CpuOptions.ThreadsPerCore",
                cpu.threads_per_core,
                i64::from(instance_type.threads_per_core()),
            )?;
        }
        Ok(InstanceOptions {
            disable_api_termination: self.disable_api_termination.unwrap_or(false),
            disable_api_stop: self.disable_api_stop.unwrap_or(false),
            ebs_optimized: self.ebs_optimized.unwrap_or(false),
            cpu_credits,
            capacity_reservation_preference: self.capacity_reservation_preference()?,
            hibernation_configured: (self.hibernation_options.as_ref())
                .and_then(|h| h.configured)
                .unwrap_or(false),
        })
    }
}

/// One row of DescribeInstanceCreditSpecifications.
#[derive(Clone, Debug, PartialEq)]
pub struct CreditSpecification {
    pub instance_id: String,
    pub cpu_credits: CpuCredits,
}

impl Filterable for CreditSpecification {
    const FILTERS: &'static [FilterField<Self>] =
        &[("instance-id", |c, _| vec![c.instance_id.clone()])];
}

fn not_burstable(instance: &Instance) -> Error {
    Error::CreditSpecificationNotSupported(format!(
        "The instance '{}' is of type {}, which does not support CPU credits: only burstable \
         performance instances (T2, T3, T3a) have a credit option.",
        instance.instance_id, instance.instance_type
    ))
}

impl Control {
    /// DescribeInstanceCreditSpecifications: the credit option of each instance named (every
    /// one must exist and be burstable), or, with none named, of every live burstable instance
    /// whose option is `unlimited`, as EC2 answers.
    pub fn describe_credit_specifications(
        &self,
        query: &Query,
    ) -> Result<Page<CreditSpecification>> {
        let state = self.read();
        let row = |instance: &Instance| {
            (instance.cpu_credits()).map(|cpu_credits| CreditSpecification {
                instance_id: instance.instance_id.clone(),
                cpu_credits,
            })
        };
        let mut rows = Vec::new();
        if query.ids.is_empty() {
            rows.extend(
                (state.instances().values())
                    .filter(|i| !matches!(i.state, InstanceState::Terminated))
                    .filter_map(row)
                    .filter(|r| r.cpu_credits == CpuCredits::Unlimited),
            );
        } else {
            for id in &query.ids {
                let instance = existing::<Instance>(&state, id)?;
                rows.push(row(instance).ok_or_else(|| not_burstable(instance))?);
            }
            rows.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
            rows.dedup();
        }
        Ok(describe::describe_rows(
            rows,
            |r| &r.instance_id,
            self.config(),
            query,
            CREDIT_SPECIFICATIONS_PAGING,
        )?)
    }

    /// ModifyInstanceCreditSpecification: sets each instance's credit option. Each instance
    /// succeeds or fails on its own, as EC2 answers (a missing or malformed ID, a type that is
    /// not burstable, a terminated instance); a value that is neither `standard` nor
    /// `unlimited` fails the whole call.
    pub fn modify_credit_specifications(
        &self,
        changes: &[(String, String)],
        dry_run: bool,
    ) -> Result<Vec<(String, Result<()>)>> {
        let parsed = (changes.iter())
            .map(|(id, credits)| Ok((id, CpuCredits::parse(credits)?)))
            .collect::<Result<Vec<_>>>()?;
        self.mutate(|txn| {
            let mut outcomes = Vec::new();
            for (id, credits) in parsed {
                let outcome = existing::<Instance>(txn.state(), id)
                    .map_err(Error::from)
                    .and_then(|instance| {
                        if instance.cpu_credits().is_none() {
                            return Err(not_burstable(instance));
                        }
                        if matches!(
                            instance.state,
                            InstanceState::ShuttingDown | InstanceState::Terminated
                        ) {
                            return Err(crate::instances::incorrect_instance_state(
                                instance,
                                instance.state,
                                "modified",
                            ));
                        }
                        let mut changed = instance.clone();
                        changed.options.cpu_credits = Some(credits);
                        Ok(changed)
                    });
                match outcome {
                    Ok(changed) => {
                        txn.put(changed)?;
                        outcomes.push((id.clone(), Ok(())));
                    }
                    Err(error) => outcomes.push((id.clone(), Err(error))),
                }
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            Ok(outcomes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::find_instance_type;
    use serde_json::json;

    fn read(value: serde_json::Value) -> LaunchOptionsInput {
        serde_json::from_value(value).expect("input")
    }

    fn t3_micro() -> &'static InstanceType {
        find_instance_type("t3.micro").expect("t3.micro")
    }

    /// What Terraform's aws_instance sends for a t3.micro with no option set.
    #[test]
    fn terraforms_defaults_are_accepted() {
        let input = read(json!({
            "DisableApiTermination": false, "EbsOptimized": false,
            "EnclaveOptions": {"Enabled": false},
            "CreditSpecification": {"CpuCredits": "unlimited"},
            "HibernationOptions": {"Configured": false},
            "CapacityReservationSpecification": {"CapacityReservationPreference": "open"},
            "PrivateDnsNameOptions": {"HostnameType": "ip-name",
                "EnableResourceNameDnsARecord": false, "EnableResourceNameDnsAAAARecord": false},
            "CpuOptions": {"CoreCount": 1, "ThreadsPerCore": 2, "AmdSevSnp": "disabled"},
        }));
        let options = input.for_type(t3_micro()).expect("accepted");
        assert_eq!(
            options,
            InstanceOptions {
                cpu_credits: Some(CpuCredits::Unlimited),
                ..InstanceOptions::default()
            }
        );
    }

    #[test]
    fn honoured_values_are_kept() {
        let input = read(json!({
            "DisableApiTermination": true, "DisableApiStop": true, "EbsOptimized": true,
            "CreditSpecification": {"CpuCredits": "Standard"},
            "CapacityReservationSpecification": {"CapacityReservationPreference": "none"},
            "HibernationOptions": {"Configured": true},
        }));
        let options = input.for_type(t3_micro()).expect("accepted");
        assert!(options.disable_api_termination && options.disable_api_stop);
        assert!(options.hibernation_configured);
        assert!(options.ebs_optimized);
        assert_eq!(options.cpu_credits, Some(CpuCredits::Standard));
        assert_eq!(
            options.capacity_reservation_preference,
            CapacityReservationPreference::None
        );
    }

    #[test]
    fn non_default_values_are_refused_by_name() {
        let cases = [
            (
                json!({"EnclaveOptions": {"Enabled": true}}),
                "EnclaveOptions.Enabled=true",
            ),
            (
                json!({"CapacityReservationSpecification":
                    {"CapacityReservationPreference": "capacity-reservations-only"}}),
                "CapacityReservationPreference=capacity-reservations-only",
            ),
            (
                json!({"PrivateDnsNameOptions": {"HostnameType": "resource-name"}}),
                "HostnameType=resource-name",
            ),
            (
                json!({"PrivateDnsNameOptions": {"EnableResourceNameDnsARecord": true}}),
                "EnableResourceNameDnsARecord=true",
            ),
            (
                json!({"CpuOptions": {"CoreCount": 2}}),
                "CpuOptions.CoreCount=2",
            ),
            (
                json!({"CpuOptions": {"ThreadsPerCore": 1}}),
                "CpuOptions.ThreadsPerCore=1",
            ),
            (
                json!({"CpuOptions": {"AmdSevSnp": "enabled"}}),
                "CpuOptions.AmdSevSnp=enabled",
            ),
        ];
        for (value, name) in cases {
            match read(value).for_type(t3_micro()) {
                Err(Error::Unsupported(message)) => assert!(message.contains(name), "{message}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn cpu_credits_belong_to_burstable_types() {
        let m5 = find_instance_type("m5.large").expect("m5.large");
        let input = read(json!({"CreditSpecification": {"CpuCredits": "unlimited"}}));
        assert!(matches!(
            input.for_type(m5),
            Err(Error::InvalidParameterCombination(_))
        ));
        let bad = read(json!({"CreditSpecification": {"CpuCredits": "turbo"}}));
        assert!(matches!(bad.check(), Err(Error::InvalidParameterValue(_))));
        // Without a choice, the type's default: T3 unlimited; none for M5.
        let options = LaunchOptionsInput::default()
            .for_type(t3_micro())
            .expect("defaults");
        assert_eq!(options.cpu_credits, None);
        assert_eq!(options.cpu_credits(t3_micro()), Some(CpuCredits::Unlimited));
        assert_eq!(options.cpu_credits(m5), None);
    }

    fn launch(
        h: &crate::testkit::Harness,
        instance_type: &str,
        options: serde_json::Value,
    ) -> String {
        let request = crate::instances::RunInstancesRequest {
            image_id: h.image_id.clone(),
            instance_type: Some(instance_type.into()),
            min_count: 1,
            max_count: 1,
            options: read(options),
            ..Default::default()
        };
        let launched = h.control.run_instances(request).expect("run");
        launched[0].instance_id.clone()
    }

    fn by_ids(ids: &[&str]) -> Query {
        Query {
            ids: ids.iter().map(|id| id.to_string()).collect(),
            ..Query::default()
        }
    }

    #[tokio::test]
    async fn credit_specifications_are_described_and_modified() {
        let h = crate::testkit::Harness::new().await;
        let standard = launch(
            &h,
            "t3.micro",
            json!({"CreditSpecification": {"CpuCredits": "standard"}}),
        );
        let default = launch(&h, "t3.micro", json!({}));
        let m5 = launch(&h, "m5.large", json!({}));
        let credits_of = |ids: &[&str]| {
            let (rows, _) = h
                .control
                .describe_credit_specifications(&by_ids(ids))
                .expect("describe");
            rows.into_iter()
                .map(|r| (r.instance_id, r.cpu_credits))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            credits_of(&[&standard]),
            vec![(standard.clone(), CpuCredits::Standard)]
        );
        assert_eq!(
            credits_of(&[&default]),
            vec![(default.clone(), CpuCredits::Unlimited)]
        );
        // Without IDs: the unlimited ones only, as EC2 answers.
        assert_eq!(
            credits_of(&[]),
            vec![(default.clone(), CpuCredits::Unlimited)]
        );
        let refused = h.control.describe_credit_specifications(&by_ids(&[&m5]));
        assert!(
            matches!(refused, Err(Error::CreditSpecificationNotSupported(_))),
            "{refused:?}"
        );

        let changes = [
            (standard.clone(), "unlimited".to_owned()),
            (m5.clone(), "standard".to_owned()),
            ("i-0123456789abcdef0".to_owned(), "standard".to_owned()),
        ];
        let outcomes = h
            .control
            .modify_credit_specifications(&changes, false)
            .expect("modify");
        assert!(outcomes[0].1.is_ok());
        assert!(matches!(
            outcomes[1].1,
            Err(Error::CreditSpecificationNotSupported(_))
        ));
        assert!(matches!(outcomes[2].1, Err(Error::Engine(_))));
        assert_eq!(
            credits_of(&[&standard]),
            vec![(standard.clone(), CpuCredits::Unlimited)]
        );
        let bad = h
            .control
            .modify_credit_specifications(&[(standard.clone(), "turbo".into())], false);
        assert!(
            matches!(bad, Err(Error::InvalidParameterValue(_))),
            "{bad:?}"
        );
        let dry = h
            .control
            .modify_credit_specifications(&[(standard.clone(), "standard".into())], true);
        assert!(matches!(dry, Err(Error::DryRunOperation)), "{dry:?}");
        assert_eq!(
            credits_of(&[&standard]),
            vec![(standard, CpuCredits::Unlimited)]
        );
    }

    #[tokio::test]
    async fn a_launch_refuses_what_it_does_not_honour_and_keeps_what_it_does() {
        let h = crate::testkit::Harness::new().await;
        let id = launch(
            &h,
            "t3.micro",
            json!({
                "DisableApiTermination": true, "EbsOptimized": true,
                "CapacityReservationSpecification": {"CapacityReservationPreference": "none"},
            }),
        );
        let options = h.instance(&id).options;
        assert!(options.disable_api_termination && options.ebs_optimized);
        assert_eq!(
            options.capacity_reservation_preference,
            CapacityReservationPreference::None
        );
        let request = crate::instances::RunInstancesRequest {
            image_id: h.image_id.clone(),
            min_count: 1,
            max_count: 1,
            options: read(json!({"EnclaveOptions": {"Enabled": true}})),
            ..Default::default()
        };
        let refused = h.control.run_instances(request);
        assert!(matches!(refused, Err(Error::Unsupported(_))), "{refused:?}");
        assert_eq!(h.control.read().instances().len(), 1, "nothing launched");
    }
}

//! Internet gateways: Create/Attach/Detach/Delete/Describe. A VPC has at most one; a gateway
//! is attached to at most one VPC, and an attached gateway cannot be deleted.

use serde::{Deserialize, Serialize};

use super::vpcs::Vpc;
use crate::describe::{self, existing, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::kinds::Tables;
use crate::{Control, Error, Result, Tags};

/// DescribeInternetGateways's MaxResults bounds.
const DESCRIBE_GATEWAYS_PAGING: Paging = Paging::within(5, 1000);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InternetGateway {
    pub internet_gateway_id: String,
    pub attached_vpc: Option<String>,
    pub tags: Tags,
}

impl Filterable for InternetGateway {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("internet-gateway-id", |g, _| {
            vec![g.internet_gateway_id.clone()]
        }),
        ("attachment.vpc-id", |g, _| {
            g.attached_vpc.clone().into_iter().collect()
        }),
        ("attachment.state", |g, _| {
            g.attached_vpc
                .iter()
                .map(|_| "available".to_owned())
                .collect()
        }),
        ("owner-id", |_, config| vec![config.account_id.clone()]),
    ];
}

impl Control {
    pub fn create_internet_gateway(&self, tags: Tags, dry_run: bool) -> Result<InternetGateway> {
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        let gateway = InternetGateway {
            internet_gateway_id: nimbus_core::new_id("igw"),
            attached_vpc: None,
            tags,
        };
        self.mutate(|txn| Ok(txn.put(gateway.clone())?))?;
        Ok(gateway)
    }

    pub fn describe_internet_gateways(&self, query: &Query) -> Result<Page<InternetGateway>> {
        let state = self.read();
        Ok(describe::describe(
            &state,
            self.config(),
            query,
            DESCRIBE_GATEWAYS_PAGING,
            |_| true,
        )?)
    }

    pub fn attach_internet_gateway(
        &self,
        gateway_id: &str,
        vpc_id: &str,
        dry_run: bool,
    ) -> Result<()> {
        self.mutate(|txn| {
            let state = txn.state();
            let mut gateway = existing::<InternetGateway>(state, gateway_id)?.clone();
            existing::<Vpc>(state, vpc_id)?;
            if let Some(attached) = &gateway.attached_vpc {
                return Err(Error::AlreadyAssociated(format!(
                    "resource {gateway_id} is already attached to network {attached}"
                )));
            }
            if let Some(other) = state
                .internet_gateways()
                .values()
                .find(|g| g.attached_vpc.as_deref() == Some(vpc_id))
            {
                return Err(Error::AlreadyAssociated(format!(
                    "network {vpc_id} already has an internet gateway attached ({})",
                    other.internet_gateway_id
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            gateway.attached_vpc = Some(vpc_id.to_owned());
            Ok(txn.put(gateway)?)
        })
    }

    pub fn detach_internet_gateway(
        &self,
        gateway_id: &str,
        vpc_id: &str,
        dry_run: bool,
    ) -> Result<()> {
        self.mutate(|txn| {
            let state = txn.state();
            let mut gateway = existing::<InternetGateway>(state, gateway_id)?.clone();
            existing::<Vpc>(state, vpc_id)?;
            if gateway.attached_vpc.as_deref() != Some(vpc_id) {
                return Err(Error::GatewayNotAttached(format!(
                    "resource {gateway_id} is not attached to network {vpc_id}"
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            gateway.attached_vpc = None;
            Ok(txn.put(gateway)?)
        })
    }

    pub fn delete_internet_gateway(&self, gateway_id: &str, dry_run: bool) -> Result<()> {
        self.mutate(|txn| {
            let gateway = existing::<InternetGateway>(txn.state(), gateway_id)?;
            if let Some(vpc_id) = &gateway.attached_vpc {
                return Err(Error::DependencyViolation(format!(
                    "The internetGateway '{gateway_id}' has dependencies and cannot be deleted \
                     (attached to {vpc_id})."
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            txn.delete::<InternetGateway>(gateway_id);
            Ok(())
        })
    }
}

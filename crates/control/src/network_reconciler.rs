//! Drives the network driver toward the VPC specs computed from the records.
//!
//! Every committed change to a networking record (VPCs, subnets, groups, gateways, route
//! tables, ACLs, instances) pokes the reconciler (see `Control::mutate_with`), so a rule
//! change reaches the driver within milliseconds rather than at the next periodic pass. A
//! pass computes every VPC's spec from the latest records and applies only the VPCs whose
//! spec differs from the one last applied (kept in memory, so the first pass after a start
//! applies them all and removes the wired VPCs that no longer exist). Specs are always
//! computed from the records at the time of the pass, under the applied-spec lock, so the
//! latest records win over an older pass. One VPC failing is logged and retried on the next
//! pass; it never stops the others.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use network::VpcSpec;

use crate::vpc::spec::{vpc_spec, vpc_specs};
use crate::instances::Instance;
use crate::{Control, Error, ResourceKind, Result};

/// How often the network is reconciled without any change, to heal drift on the host.
const NETWORK_TICK: Duration = Duration::from_secs(30);

/// What the network reconciler knows of the host: the spec last applied to each VPC, and
/// whether the VPCs wired before this start have been swept.
#[derive(Default)]
pub struct AppliedNetwork {
    specs: BTreeMap<String, VpcSpec>,
    swept: bool,
}

/// Whether a change to a record can change a VPC's spec.
pub(crate) fn shapes_network(change: &store::Change) -> bool {
    let kind = match change {
        store::Change::Put(record) => record.kind.as_str(),
        store::Change::Delete { kind, .. } => kind.as_str(),
    };
    [
        ResourceKind::Vpc,
        ResourceKind::Subnet,
        ResourceKind::SecurityGroup,
        ResourceKind::InternetGateway,
        ResourceKind::RouteTable,
        ResourceKind::NetworkAcl,
        ResourceKind::Instance,
    ]
    .iter()
    .any(|k| k.as_str() == kind)
}

impl Control {
    /// Asks the network reconciler to run now.
    pub fn wake_network(&self) {
        self.network_signal.notify_one();
    }

    /// Runs forever; spawn it once per server.
    pub async fn run_network_reconciler(self: Arc<Self>) {
        loop {
            self.reconcile_network().await;
            tokio::select! {
                _ = self.network_signal.notified() => {}
                _ = tokio::time::sleep(NETWORK_TICK) => {}
            }
        }
    }

    /// One pass: apply every VPC whose spec changed, remove VPCs that no longer exist.
    pub async fn reconcile_network(&self) {
        let mut applied = self.applied_network.lock().await;
        let driver = self.drivers.network.clone();
        if !applied.swept {
            match driver.wired_vpcs().await {
                Ok(wired) => {
                    // Unknown to this process: removed below unless a record still wants it.
                    for vpc_id in wired {
                        applied.specs.entry(vpc_id.clone()).or_insert_with(|| VpcSpec {
                            vpc_id,
                            cidrs: Vec::new(),
                            dns_support: false,
                            dns_hostnames: false,
                            dns_domain: String::new(),
                            subnets: Vec::new(),
                            interfaces: Vec::new(),
                            security_groups: Vec::new(),
                            network_acls: Vec::new(),
                        });
                    }
                    applied.swept = true;
                }
                Err(error) => tracing::warn!(%error, "cannot list the wired VPCs; retrying"),
            }
        }
        let wanted = vpc_specs(&self.read(), &self.config().region);
        for (vpc_id, spec) in &wanted {
            if applied.specs.get(vpc_id) == Some(spec) {
                continue;
            }
            match driver.apply_vpc(spec).await {
                Ok(()) => {
                    applied.specs.insert(vpc_id.clone(), spec.clone());
                }
                Err(error) => {
                    // Forget what was applied: the next pass applies the whole spec again.
                    applied.specs.remove(vpc_id);
                    tracing::warn!(vpc = vpc_id, %error, "applying the VPC failed; retrying");
                }
            }
        }
        let gone: Vec<String> = applied
            .specs
            .keys()
            .filter(|id| !wanted.contains_key(*id))
            .cloned()
            .collect();
        for vpc_id in gone {
            match driver.remove_vpc(&vpc_id).await {
                Ok(()) => {
                    applied.specs.remove(&vpc_id);
                }
                Err(error) => tracing::warn!(vpc = vpc_id, %error, "removing the VPC failed; retrying"),
            }
        }
    }

    /// The taps of an instance's interfaces, in device-index order, for its VM: its VPC is
    /// applied first, so the driver knows the interfaces.
    pub(crate) async fn open_nics(&self, instance: &Instance) -> Result<Vec<compute::NicSpec>> {
        let Some(network) = &instance.network else {
            return Ok(Vec::new());
        };
        self.ensure_vpc_applied(&network.vpc_id).await?;
        let tap = self
            .drivers
            .network
            .open_tap(&network.vpc_id, &network.interface_id)
            .await
            .map_err(|e| {
                Error::Internal(format!(
                    "cannot open the tap of {}: {e}",
                    network.interface_id
                ))
            })?;
        Ok(vec![compute::NicSpec {
            mac: network.mac.clone(),
            tap: Arc::new(tap),
        }])
    }

    /// Makes sure a VPC is applied as its records are now (before a VM is wired into it).
    async fn ensure_vpc_applied(&self, vpc_id: &str) -> Result<()> {
        let mut applied = self.applied_network.lock().await;
        let spec = {
            let state = self.read();
            let vpc = crate::describe::existing::<crate::vpc::vpcs::Vpc>(&state, vpc_id)?;
            vpc_spec(&state, &self.config().region, vpc)
        };
        if applied.specs.get(vpc_id) == Some(&spec) {
            return Ok(());
        }
        self.drivers
            .network
            .apply_vpc(&spec)
            .await
            .map_err(|e| Error::Internal(format!("cannot wire VPC {vpc_id}: {e}")))?;
        applied.specs.insert(vpc_id.to_owned(), spec);
        Ok(())
    }
}

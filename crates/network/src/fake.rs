//! An in-memory driver for unit tests: it records the last spec applied to each VPC.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{Error, InterfaceCounters, NetworkDriver, Result, VpcSpec};

#[derive(Default)]
pub struct FakeNetwork {
    applied: Mutex<BTreeMap<String, VpcSpec>>,
    failing: Mutex<Vec<String>>,
    held: Mutex<Vec<ipnet::Ipv4Net>>,
}

impl FakeNetwork {
    /// Makes every apply of `vpc_id` fail, as a host that cannot wire it would.
    pub fn fail_vpc(&self, vpc_id: &str) {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(vpc_id.to_owned());
    }

    /// Makes `network` held by something else on the host, as another nimbus's VPCs would.
    pub fn hold_elsewhere(&self, network: ipnet::Ipv4Net) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(network);
    }

    /// The spec last applied to a VPC, if it is wired.
    pub fn applied(&self, vpc_id: &str) -> Option<VpcSpec> {
        self.lock().get(vpc_id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, VpcSpec>> {
        self.applied.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl NetworkDriver for FakeNetwork {
    async fn apply_vpc(&self, vpc: &VpcSpec) -> Result<()> {
        let failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if failing.contains(&vpc.vpc_id) {
            return Err(Error::Invalid(format!(
                "{} cannot be wired here",
                vpc.vpc_id
            )));
        }
        drop(failing);
        self.lock().insert(vpc.vpc_id.clone(), vpc.clone());
        Ok(())
    }

    async fn remove_vpc(&self, vpc_id: &str) -> Result<()> {
        self.lock().remove(vpc_id);
        Ok(())
    }

    async fn wired_vpcs(&self) -> Result<Vec<String>> {
        Ok(self.lock().keys().cloned().collect())
    }

    /// One fake network per process: nothing else can leave VPCs behind in it.
    async fn remove_orphans(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// A descriptor of `/dev/null` stands in for the tap of an applied interface.
    async fn open_tap(&self, vpc_id: &str, interface_id: &str) -> Result<OwnedFd> {
        let known = self.lock().get(vpc_id).is_some_and(|vpc| {
            vpc.interfaces
                .iter()
                .any(|i| i.interface_id == interface_id)
        });
        if !known {
            return Err(Error::UnknownInterface(interface_id.to_owned()));
        }
        Ok(std::fs::File::open("/dev/null")?.into())
    }

    fn held_public_ips(&self) -> Result<Vec<ipnet::Ipv4Net>> {
        Ok(self.held.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn counters(&self, _vpc_id: &str, _interface_id: &str) -> Option<InterfaceCounters> {
        None
    }

    async fn metadata_listener(&self, _vpc_id: &str) -> Result<std::net::TcpListener> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?)
    }

    fn instance_at(&self, vpc_id: &str, ip: std::net::Ipv4Addr) -> Option<String> {
        crate::instance_at(self.lock().get(vpc_id)?, ip)
    }
}

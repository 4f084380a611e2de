//! EC2 as Elastic Load Balancing reaches it, answered from EC2's records through control:
//! the subnets, groups and instances a balancer names, and the network interfaces of its
//! nodes (service-owned: users see them in DescribeNetworkInterfaces but cannot change
//! them), made and deleted by control like any interface.

use std::sync::Arc;

use async_trait::async_trait;
use control::instances::InstanceState;
use control::kinds::Tables;
use control::vpc::network_interfaces::{ManagedInterface, ManagedInterfaceRequest};
use control::vpc::route_tables::RouteTableQueries;
use control::vpc::security_groups::GroupQueries;
use control::vpc::subnets::Subnet;
use control::Control;
use elbv2::ec2::{Ec2Refusal, InstanceInfo, NodeInterface, NodeRequest, SubnetInfo};

use crate::error::{ApiError, Ec2Error};

pub struct Ec2ForElbv2 {
    control: Arc<Control>,
}

impl Ec2ForElbv2 {
    pub fn new(control: Arc<Control>) -> Ec2ForElbv2 {
        Ec2ForElbv2 { control }
    }
}

fn refusal(error: control::Error) -> Ec2Refusal {
    let error: ApiError = Ec2Error::Control(error).into();
    Ec2Refusal {
        code: error.code,
        message: error.message,
    }
}

fn info(state: &control::State, subnet: &Subnet) -> SubnetInfo {
    SubnetInfo {
        subnet_id: subnet.subnet_id.clone(),
        vpc_id: subnet.vpc_id.clone(),
        zone: subnet.availability_zone.clone(),
        cidr: subnet.cidr,
        internet_route: state
            .route_table_of(subnet)
            .is_some_and(|t| t.routes_to_internet(state)),
    }
}

/// The requester IDs of balancer nodes' interfaces.
const NODE_OWNERS: [&str; 2] = ["amazon-elb", "amazon-aws"];

#[async_trait]
impl elbv2::Ec2 for Ec2ForElbv2 {
    async fn subnets(&self, ids: &[String]) -> Result<Vec<SubnetInfo>, Ec2Refusal> {
        let state = self.control.read();
        ids.iter()
            .map(|id| match state.subnets().get(id) {
                Some(subnet) => Ok(info(&state, subnet)),
                None => Err(Ec2Refusal {
                    code: "InvalidSubnetID.NotFound".into(),
                    message: format!("The subnet ID '{id}' does not exist"),
                }),
            })
            .collect()
    }

    async fn vpc_subnets(&self, vpc_id: &str) -> Result<Vec<SubnetInfo>, Ec2Refusal> {
        let state = self.control.read();
        Ok((state.subnets().values())
            .filter(|s| s.vpc_id == vpc_id)
            .map(|s| info(&state, s))
            .collect())
    }

    async fn vpc_exists(&self, vpc_id: &str) -> Result<bool, Ec2Refusal> {
        Ok(self.control.read().vpcs().contains_key(vpc_id))
    }

    async fn default_group(&self, vpc_id: &str) -> Result<String, Ec2Refusal> {
        (self.control.read().default_group(vpc_id))
            .map(|g| g.group_id.clone())
            .ok_or_else(|| Ec2Refusal {
                code: "InvalidGroup.NotFound".into(),
                message: format!("The VPC '{vpc_id}' has no default security group"),
            })
    }

    async fn check_groups(&self, vpc_id: &str, group_ids: &[String]) -> Result<(), Ec2Refusal> {
        let state = self.control.read();
        for id in group_ids {
            if state
                .security_groups()
                .get(id)
                .is_none_or(|g| g.vpc_id != vpc_id)
            {
                return Err(Ec2Refusal {
                    code: "InvalidGroup.NotFound".into(),
                    message: format!("One or more security groups are invalid: '{id}' is not a group of '{vpc_id}'"),
                });
            }
        }
        Ok(())
    }

    async fn create_node(&self, request: &NodeRequest) -> Result<NodeInterface, Ec2Refusal> {
        let interface = self
            .control
            .create_managed_interface(&ManagedInterfaceRequest {
                subnet_id: request.subnet_id.clone(),
                security_group_ids: request.security_groups.clone(),
                description: request.description.clone(),
                public_ip: request.public_ip,
                managed: ManagedInterface {
                    requester_id: request.requester_id.clone(),
                    interface_type: request.interface_type.clone(),
                    node: true,
                },
            })
            .map_err(refusal)?;
        Ok(NodeInterface {
            interface_id: interface.network.interface_id.clone(),
            private_ip: interface.network.primary_ip(),
            public_ip: interface.network.public_ip,
        })
    }

    async fn set_node_groups(
        &self,
        interface_id: &str,
        groups: &[String],
    ) -> Result<(), Ec2Refusal> {
        self.control
            .set_managed_interface_groups(interface_id, groups)
            .map_err(refusal)
    }

    async fn delete_node(&self, interface_id: &str) -> Result<(), Ec2Refusal> {
        self.control
            .delete_managed_interface(interface_id)
            .map_err(refusal)
    }

    async fn node_interfaces(&self) -> Result<Vec<(String, String)>, Ec2Refusal> {
        Ok((self.control.read().network_interfaces().values())
            .filter(|i| {
                i.managed
                    .as_ref()
                    .is_some_and(|m| m.node && NODE_OWNERS.contains(&m.requester_id.as_str()))
            })
            .map(|i| {
                (
                    i.network.interface_id.clone(),
                    i.network.description.clone(),
                )
            })
            .collect())
    }

    fn publish_names(
        &self,
        names: std::collections::BTreeMap<String, Vec<elbv2::ec2::ServiceName>>,
    ) {
        self.control.set_service_names(names);
    }

    async fn instances(&self, ids: &[String]) -> Result<Vec<InstanceInfo>, Ec2Refusal> {
        let state = self.control.read();
        Ok(ids
            .iter()
            .filter_map(|id| state.instances().get(id))
            .filter(|i| i.state != InstanceState::Terminated)
            .map(|i| {
                let network = i.live_network();
                InstanceInfo {
                    instance_id: i.instance_id.clone(),
                    vpc_id: network.map(|n| n.vpc_id.clone()).unwrap_or_default(),
                    zone: i.availability_zone.clone(),
                    private_ip: network.map(|n| n.primary_ip()),
                    state: i.state.as_str().to_owned(),
                }
            })
            .collect())
    }
}

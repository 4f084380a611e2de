//! What Elastic Load Balancing needs of EC2, answered by the api crate from EC2's records:
//! subnets and groups to check, a network interface per balancer node, the instances
//! registered as targets.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use async_trait::async_trait;
use ipnet::Ipv4Net;
/// A balancer's name and its nodes' addresses, as the VPC resolver answers it.
pub use network::ServiceName;

/// EC2 refused or failed: its code and message, passed on to the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ec2Refusal {
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetInfo {
    pub subnet_id: String,
    pub vpc_id: String,
    pub zone: String,
    pub cidr: Ipv4Net,
    /// Its route table sends 0.0.0.0/0 to an attached internet gateway.
    pub internet_route: bool,
}

/// The network interface a balancer node needs in one subnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRequest {
    pub subnet_id: String,
    /// None at all for a network load balancer without groups.
    pub security_groups: Vec<String>,
    /// `ELB app/NAME/HEX`, as AWS describes a balancer's interfaces.
    pub description: String,
    /// An internet-facing balancer's node has a public IP.
    pub public_ip: bool,
    /// AWS's `interfaceType` and the owner it shows (`amazon-elb`, `amazon-aws`).
    pub interface_type: String,
    pub requester_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInterface {
    pub interface_id: String,
    pub private_ip: Ipv4Addr,
    pub public_ip: Option<Ipv4Addr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceInfo {
    pub instance_id: String,
    pub vpc_id: String,
    pub zone: String,
    /// None once the instance has no network (terminated).
    pub private_ip: Option<Ipv4Addr>,
    /// EC2's state name (`running`, `stopped`…).
    pub state: String,
}

#[async_trait]
pub trait Ec2: Send + Sync {
    /// The subnets named, or `SubnetNotFound` naming the first that does not exist.
    async fn subnets(&self, ids: &[String]) -> Result<Vec<SubnetInfo>, Ec2Refusal>;
    /// Every subnet of a VPC (to find the zone of an IP target).
    async fn vpc_subnets(&self, vpc_id: &str) -> Result<Vec<SubnetInfo>, Ec2Refusal>;
    async fn vpc_exists(&self, vpc_id: &str) -> Result<bool, Ec2Refusal>;
    /// The VPC's default security group.
    async fn default_group(&self, vpc_id: &str) -> Result<String, Ec2Refusal>;
    /// Checks that every group exists in the VPC.
    async fn check_groups(&self, vpc_id: &str, group_ids: &[String]) -> Result<(), Ec2Refusal>;
    async fn create_node(&self, request: &NodeRequest) -> Result<NodeInterface, Ec2Refusal>;
    async fn set_node_groups(
        &self,
        interface_id: &str,
        groups: &[String],
    ) -> Result<(), Ec2Refusal>;
    /// Deletes a node's interface; an absent one is no error.
    async fn delete_node(&self, interface_id: &str) -> Result<(), Ec2Refusal>;
    /// Every interface EC2 holds for balancer nodes, with its description.
    async fn node_interfaces(&self) -> Result<Vec<(String, String)>, Ec2Refusal>;
    /// The instances named that exist (unknown IDs are left out).
    async fn instances(&self, ids: &[String]) -> Result<Vec<InstanceInfo>, Ec2Refusal>;
    /// The balancers' names in each VPC (all of them, by VPC ID), for the VPC resolver.
    fn publish_names(&self, names: BTreeMap<String, Vec<ServiceName>>);
}

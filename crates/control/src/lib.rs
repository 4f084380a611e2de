//! The EC2, IAM and STS services: the rules of every resource (validation, state machines),
//! their reconcilers, on the resource engine ([`engine`]), which holds the working set and
//! writes each call through to the [`store::Store`] in one transaction.
//!
//! Every kind is declared once, in `kinds.rs`, and registered into the engine; the engine's
//! generic modules (describe, filters, pages, tags, idempotency) are re-exported here under
//! their usual names.

pub mod attachments;
pub mod catalog;
pub mod credentials;
pub mod direct;
pub mod drivers;
#[cfg(test)]
mod fake_blocks;
pub mod hibernation;
pub mod host_stats;
pub mod iam;
pub mod images;
pub mod instance_reconciler;
pub mod instances;
pub mod keypairs;
pub mod kinds;
pub mod launch_options;
pub mod launch_templates;
pub mod limits;
pub mod metadata;
pub mod metering;
pub mod network_reconciler;
pub mod permissions;
pub mod profile_associations;
pub mod reconciler;
pub mod recovery;
pub mod snapshots;
pub mod status_checks;
pub mod tags;
#[cfg(test)]
mod testkit;
pub mod volume_types;
pub mod volumes;
pub mod vpc;

use std::sync::{Arc, RwLockReadGuard};

use nimbus_core::Config;
use store::{Store, StoreError};

pub use drivers::{BlockDriver, Drivers};

/// EC2's reconcilers, for the server's one list (`engine::reconciler::run_all`); the
/// collectors push their samples into `sink`.
pub fn reconcilers(
    control: &Arc<Control>,
    sink: Arc<dyn nimbus_core::metrics::MetricSink>,
) -> Vec<Arc<dyn engine::Reconciler>> {
    vec![
        Arc::new(reconciler::Storage(control.clone())),
        Arc::new(network_reconciler::Network(control.clone())),
        Arc::new(status_checks::StatusChecks(control.clone())),
        Arc::new(metering::Collectors::new(control.clone(), sink)),
    ]
}
pub use engine::{describe, filter, idempotency, pagination};
pub use engine::{Kind, KindSpec, Resource, State, Tags, Txn};
pub use kinds::Tables;

/// What went wrong in a control operation. Variants say what happened; the API layer of each
/// service chooses the AWS code (`api/src/error.rs` for EC2), reading a kind's codes from its
/// declaration in `kinds.rs`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// What the engine refused (a missing or malformed ID, a bad filter, page or tag…).
    #[error(transparent)]
    Engine(#[from] engine::Error),
    #[error("The {kind} '{id}' already exists.")]
    Duplicate { kind: Kind, id: String },
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("{0}")]
    InvalidParameterCombination(String),
    #[error("The request must contain the parameter {0}")]
    MissingParameter(String),
    #[error("The following supplied instance types do not exist: [{0}]")]
    UnknownInstanceType(String),
    #[error("Request would have succeeded, but DryRun flag is set.")]
    DryRunOperation,
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    MalformedPublicKey(String),
    #[error("The zone '{0}' does not exist.")]
    UnknownZone(String),
    /// The resource is in a state that does not allow the operation.
    #[error("{0}")]
    IncorrectState(String),
    /// A volume modification is still in progress.
    #[error("{0}")]
    ModificationInProgress(String),
    #[error("{0}")]
    VolumeInUse(String),
    #[error("{0}")]
    SnapshotInUse(String),
    #[error("AMI name '{0}' is already in use by an AMI owned by this account.")]
    DuplicateImageName(String),
    #[error("{0}")]
    TooManyInstances(String),
    /// The instance is in a state that does not allow the operation.
    #[error("{0}")]
    IncorrectInstanceState(String),
    /// StopInstances `Hibernate` of an instance not configured for hibernation at launch.
    #[error("{0}")]
    UnsupportedHibernationConfiguration(String),
    /// A volume and an instance are in different availability zones.
    #[error("{0}")]
    VolumeInOtherZone(String),
    /// The volume is not attached where the request says.
    #[error("{0}")]
    NotAttached(String),
    #[error("{0}")]
    OperationNotPermitted(String),
    /// CPU credits asked of an instance whose type is not burstable.
    #[error("{0}")]
    CreditSpecificationNotSupported(String),
    /// Something still depends on the resource (a VPC with subnets, a group in use…).
    #[error("{0}")]
    DependencyViolation(String),
    /// A VPC CIDR block outside /16–/28, or overlapping the VPC's other blocks.
    #[error("{0}")]
    InvalidVpcRange(String),
    /// A subnet CIDR block outside its VPC or outside /16–/28.
    #[error("{0}")]
    InvalidSubnetRange(String),
    /// A subnet CIDR block overlapping another subnet.
    #[error("{0}")]
    SubnetConflict(String),
    /// A VPC CIDR block that cannot be removed.
    #[error("{0}")]
    InvalidCidrBlock(String),
    #[error("{0}")]
    CidrLimitExceeded(String),
    #[error("{0}")]
    DuplicatePermission(String),
    #[error("{0}")]
    PermissionNotFound(String),
    #[error("{0}")]
    RuleIdNotFound(String),
    #[error("{0}")]
    ReservedGroupName(String),
    /// A default security group.
    #[error("{0}")]
    CannotDelete(String),
    #[error("{0}")]
    AlreadyAssociated(String),
    #[error("{0}")]
    GatewayNotAttached(String),
    #[error("{0}")]
    AssociationNotFound(String),
    #[error("{0}")]
    InvalidAttributeItemValue(String),
    #[error("{0}")]
    DefaultVpcAlreadyExists(String),
    #[error("{0}")]
    DefaultVpcDoesNotExist(String),
    #[error("{0}")]
    DefaultSubnetAlreadyExists(String),
    #[error("{0}")]
    RouteNotFound(String),
    #[error("{0}")]
    RouteAlreadyExists(String),
    #[error("{0}")]
    AclEntryNotFound(String),
    #[error("{0}")]
    AclEntryExists(String),
    /// A private IP another interface has.
    #[error("{0}")]
    AddressInUse(String),
    #[error("{0}")]
    InsufficientAddresses(String),
    #[error("{0}")]
    AddressNotFound(String),
    #[error("{0}")]
    InterfaceNotFound(String),
    #[error("{0}")]
    MalformedInterfaceId(String),
    /// An attached interface, or an instance's primary one.
    #[error("{0}")]
    InterfaceInUse(String),
    /// No interface has this attachment ID.
    #[error("{0}")]
    InterfaceAttachmentNotFound(String),
    #[error("{0}")]
    PrivateIpLimitExceeded(String),
    /// More network interfaces than an instance can have.
    #[error("{0}")]
    AttachmentLimitExceeded(String),
    /// The public IP pool is exhausted.
    #[error("{0}")]
    AddressLimitExceeded(String),
    #[error("{0}")]
    LaunchTemplateNameNotFound(String),
    #[error("{0}")]
    MalformedLaunchTemplateName(String),
    #[error("{0}")]
    LaunchTemplateVersionNotFound(String),
    /// One of the account's limits ([`limits::Limit`]) would be passed.
    #[error("{message}")]
    LimitExceeded {
        limit: limits::Limit,
        message: String,
    },
    /// The host's disk is short of the configured reserve for a new volume.
    #[error("{0}")]
    InsufficientVolumeCapacity(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A parameter (or `Parameter=value`) of the EC2 model that nimbus does not honour:
    /// refused, never ignored.
    pub fn unsupported_parameter(name: &str) -> Error {
        Error::Unsupported(format!(
            "The parameter {name} is not supported by nimbus (see docs/compatibility.md)."
        ))
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Error {
        Error::Engine(error.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub struct Control {
    config: Config,
    resources: engine::Engine,
    drivers: Drivers,
    reconcile_signal: tokio::sync::Notify,
    vms: instance_reconciler::VmTable,
    statuses: status_checks::StatusTable,
    /// The commits that shape the network, and how many of them the reconciler has applied.
    network_changes: Arc<engine::Subscription>,
    network_applied: tokio::sync::watch::Sender<u64>,
    applied_network: tokio::sync::Mutex<network_reconciler::AppliedNetwork>,
    vpc_metadata: metadata::VpcMetadataServers,
    /// Names other services give their addresses in each VPC (load balancers'), answered by
    /// the VPC's resolver; kept in memory: their owners publish them on every pass.
    service_names: std::sync::Mutex<std::collections::BTreeMap<String, Vec<network::ServiceName>>>,
}

impl Control {
    pub fn open(config: Config, store: Arc<dyn Store>, drivers: Drivers) -> Result<Control> {
        let mut resources = engine::Engine::open(store, kinds::registry())?;
        let network_changes = resources.subscribe(network_reconciler::NETWORK_KINDS);
        let control = Control {
            config,
            resources,
            drivers,
            reconcile_signal: tokio::sync::Notify::new(),
            vms: instance_reconciler::VmTable::default(),
            statuses: status_checks::StatusTable::default(),
            network_changes,
            network_applied: tokio::sync::watch::Sender::new(0),
            applied_network: Default::default(),
            vpc_metadata: metadata::VpcMetadataServers::default(),
            service_names: Default::default(),
        };
        control.ensure_default_vpc()?;
        control.adopt_vpcs_without_dhcp_options()?;
        Ok(control)
    }

    /// The block store holding every volume's and snapshot's data.
    pub fn engine(&self) -> &dyn BlockDriver {
        self.drivers.blocks.as_ref()
    }

    /// This host's network driver.
    pub(crate) fn network(&self) -> &dyn network::NetworkDriver {
        self.drivers.network.as_ref()
    }

    fn hypervisor(&self) -> &dyn compute::Hypervisor {
        self.drivers.hypervisor.as_ref()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether an `Owners`/`OwnerIds` list includes this account (an empty list means any
    /// owner): every resource here belongs to the one configured account.
    pub fn owners_include_account(&self, owners: &[String]) -> bool {
        owners.is_empty()
            || owners
                .iter()
                .any(|o| o == "self" || *o == self.config.account_id)
    }

    /// A consistent read view of every resource.
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.resources.read()
    }

    /// Runs `operation` against the working set and commits what it changed in one transaction.
    pub fn mutate<R>(&self, operation: impl FnOnce(&mut Txn) -> Result<R>) -> Result<R> {
        self.resources.mutate(operation)
    }

    /// [`Control::mutate`] for services whose rules have an error type of their own.
    pub fn mutate_with<R, E: From<engine::Error>>(
        &self,
        operation: impl FnOnce(&mut Txn) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        self.resources.mutate(operation)
    }
}

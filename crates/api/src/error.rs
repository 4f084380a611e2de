//! AWS error codes and HTTP statuses: chosen here and nowhere else.

use axum::http::StatusCode;
use control::keypairs::KeyPair;
use control::launch_templates::LaunchTemplate;
use control::limits::Limit;
use control::vpc::security_groups::SecurityGroup;
use control::{Error as ControlError, Resource};
use engine::Error as EngineError;

/// An error as the client will see it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

/// What went wrong in an EC2 Query request.
#[derive(Debug, thiserror::Error)]
pub enum Ec2Error {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("{0}")]
    MalformedQueryString(String),
    #[error("The request must contain the parameter Action")]
    MissingAction,
    #[error("The action {0} is not valid for this web service.")]
    UnknownAction(String),
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> ApiError {
        Ec2Error::Control(error).into()
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        ControlError::from(error).into()
    }
}

impl From<Ec2Error> for ApiError {
    fn from(error: Ec2Error) -> ApiError {
        let (status, code) = ec2_code(&error);
        if status.is_server_error() {
            tracing::error!(%error, "internal error");
        }
        ApiError::new(status, code, error.to_string())
    }
}

/// EC2's AWS code and HTTP status for each error: chosen here and nowhere else. A kind's
/// NotFound and Malformed codes come from its declaration in `control::kinds`.
pub fn ec2_code(error: &Ec2Error) -> (StatusCode, &'static str) {
    let error = match error {
        Ec2Error::Control(error) => error,
        Ec2Error::MalformedQueryString(_) => {
            return (StatusCode::BAD_REQUEST, "MalformedQueryString")
        }
        Ec2Error::MissingAction => return (StatusCode::BAD_REQUEST, "MissingAction"),
        Ec2Error::UnknownAction(_) => return (StatusCode::BAD_REQUEST, "InvalidAction"),
    };
    let code = match error {
        ControlError::Engine(error) => match error {
            EngineError::NotFound { kind, .. } => kind.spec().not_found_code,
            EngineError::MalformedId {
                kind: Some(kind), ..
            } => kind.spec().malformed_code,
            EngineError::MalformedId { kind: None, .. } => "InvalidID",
            EngineError::UnknownFilter(_)
            | EngineError::MaxResultsOutOfRange { .. }
            | EngineError::InvalidTag(_)
            | EngineError::InvalidClientToken(_) => "InvalidParameterValue",
            EngineError::IdsWithMaxResults(_) => "InvalidParameterCombination",
            EngineError::InvalidPaginationToken(_) => "InvalidPaginationToken",
            EngineError::MissingParameter(_) => "MissingParameter",
            EngineError::TooManyTags => "TagLimitExceeded",
            EngineError::ClientTokenReused(_) => "IdempotentParameterMismatch",
            EngineError::Unreadable { .. } | EngineError::Store(_) | EngineError::Internal(_) => {
                return (StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
            }
        },
        ControlError::Duplicate { kind, .. } if *kind == KeyPair::KIND => {
            "InvalidKeyPair.Duplicate"
        }
        ControlError::Duplicate { kind, .. } if *kind == SecurityGroup::KIND => {
            "InvalidGroup.Duplicate"
        }
        ControlError::Duplicate { kind, .. } if *kind == LaunchTemplate::KIND => {
            "InvalidLaunchTemplateName.AlreadyExistsException"
        }
        ControlError::Duplicate { .. } => "InvalidParameterValue",
        ControlError::InvalidParameterValue(_) => "InvalidParameterValue",
        ControlError::InvalidParameterCombination(_) => "InvalidParameterCombination",
        ControlError::MissingParameter(_) => "MissingParameter",
        ControlError::UnknownInstanceType(_) => "InvalidInstanceType",
        ControlError::DryRunOperation => {
            return (StatusCode::PRECONDITION_FAILED, "DryRunOperation")
        }
        ControlError::Unsupported(_) => "UnsupportedOperation",
        ControlError::MalformedPublicKey(_) => "InvalidKey.Format",
        ControlError::UnknownZone(_) => "InvalidZone.NotFound",
        ControlError::IncorrectState(_) => "IncorrectState",
        ControlError::ModificationInProgress(_) => "IncorrectModificationState",
        ControlError::VolumeInUse(_) => "VolumeInUse",
        ControlError::SnapshotInUse(_) => "InvalidSnapshot.InUse",
        ControlError::DuplicateImageName(_) => "InvalidAMIName.Duplicate",
        ControlError::TooManyInstances(_) => "InstanceLimitExceeded",
        ControlError::IncorrectInstanceState(_) => "IncorrectInstanceState",
        ControlError::UnsupportedHibernationConfiguration(_) => {
            "UnsupportedHibernationConfiguration"
        }
        ControlError::VolumeInOtherZone(_) => "InvalidVolume.ZoneMismatch",
        ControlError::NotAttached(_) => "InvalidAttachment.NotFound",
        ControlError::OperationNotPermitted(_) => "OperationNotPermitted",
        ControlError::CreditSpecificationNotSupported(_) => {
            "InstanceCreditSpecification.NotSupported"
        }
        ControlError::DependencyViolation(_) => "DependencyViolation",
        ControlError::InvalidVpcRange(_) => "InvalidVpc.Range",
        ControlError::InvalidSubnetRange(_) => "InvalidSubnet.Range",
        ControlError::SubnetConflict(_) => "InvalidSubnet.Conflict",
        ControlError::InvalidCidrBlock(_) => "InvalidCidrBlock.InUse",
        ControlError::CidrLimitExceeded(_) => "CidrLimitExceeded",
        ControlError::DuplicatePermission(_) => "InvalidPermission.Duplicate",
        ControlError::PermissionNotFound(_) => "InvalidPermission.NotFound",
        ControlError::RuleIdNotFound(_) => "InvalidSecurityGroupRuleId.NotFound",
        ControlError::ReservedGroupName(_) => "InvalidGroup.Reserved",
        ControlError::CannotDelete(_) => "CannotDelete",
        ControlError::AlreadyAssociated(_) => "Resource.AlreadyAssociated",
        ControlError::GatewayNotAttached(_) => "Gateway.NotAttached",
        ControlError::AssociationNotFound(_) => "InvalidAssociationID.NotFound",
        ControlError::InvalidAttributeItemValue(_) => "InvalidAMIAttributeItemValue",
        ControlError::DefaultVpcAlreadyExists(_) => "DefaultVpcAlreadyExists",
        ControlError::DefaultVpcDoesNotExist(_) => "DefaultVpcDoesNotExist",
        ControlError::DefaultSubnetAlreadyExists(_) => {
            "DefaultSubnetAlreadyExistsInAvailabilityZone"
        }
        ControlError::RouteNotFound(_) => "InvalidRoute.NotFound",
        ControlError::RouteAlreadyExists(_) => "RouteAlreadyExists",
        ControlError::AclEntryNotFound(_) => "InvalidNetworkAclEntry.NotFound",
        ControlError::AclEntryExists(_) => "NetworkAclEntryAlreadyExists",
        ControlError::AddressInUse(_) => "InvalidIPAddress.InUse",
        ControlError::InsufficientAddresses(_) => "InsufficientFreeAddressesInSubnet",
        ControlError::AddressLimitExceeded(_) => "AddressLimitExceeded",
        ControlError::AddressNotFound(_) => "InvalidAddress.NotFound",
        ControlError::InterfaceNotFound(_) => "InvalidNetworkInterfaceID.NotFound",
        ControlError::LaunchTemplateNameNotFound(_) => {
            "InvalidLaunchTemplateName.NotFoundException"
        }
        ControlError::MalformedLaunchTemplateName(_) => {
            "InvalidLaunchTemplateName.MalformedException"
        }
        ControlError::LaunchTemplateVersionNotFound(_) => "InvalidLaunchTemplateId.VersionNotFound",
        ControlError::MalformedInterfaceId(_) => "InvalidNetworkInterfaceID.Malformed",
        ControlError::AttachmentLimitExceeded(_) => "AttachmentLimitExceeded",
        ControlError::InterfaceInUse(_) => "InvalidNetworkInterface.InUse",
        ControlError::InterfaceAttachmentNotFound(_) => "InvalidAttachmentID.NotFound",
        ControlError::PrivateIpLimitExceeded(_) => "PrivateIpAddressLimitExceeded",
        ControlError::LimitExceeded { limit, .. } => match limit {
            Limit::Vpcs => "VpcLimitExceeded",
            Limit::SubnetsPerVpc => "SubnetLimitExceeded",
            Limit::SecurityGroupsPerVpc => "SecurityGroupLimitExceeded",
            Limit::RulesPerGroup => "RulesPerSecurityGroupLimitExceeded",
            Limit::GroupsPerInterface => "SecurityGroupsPerInterfaceLimitExceeded",
            Limit::ElasticIps => "AddressLimitExceeded",
            Limit::NetworkInterfaces => "NetworkInterfaceLimitExceeded",
            Limit::Volumes | Limit::VolumeStorage(_) => "VolumeLimitExceeded",
            Limit::Snapshots => "SnapshotLimitExceeded",
        },
        ControlError::InsufficientVolumeCapacity(_) => "InsufficientVolumeCapacity",
        ControlError::Internal(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
    };
    (StatusCode::BAD_REQUEST, code)
}

impl From<ec2model::DecodeError> for ApiError {
    fn from(error: ec2model::DecodeError) -> ApiError {
        ApiError::bad_request(error.aws_code(), error.to_string())
    }
}

impl From<awsproto::AuthError> for ApiError {
    fn from(error: awsproto::AuthError) -> ApiError {
        let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::FORBIDDEN);
        ApiError::new(status, error.aws_code(), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use control::images::Image;

    use super::*;

    #[test]
    fn kind_codes_come_from_the_declarations() {
        let code = |error: EngineError| ec2_code(&ControlError::from(error).into());
        let not_found = EngineError::not_found(Image::KIND, "ami-0123456789abcdef0");
        assert_eq!(
            code(not_found),
            (StatusCode::BAD_REQUEST, "InvalidAMIID.NotFound")
        );
        let malformed = Image::KIND.check_id("foo-missing").expect_err("malformed");
        assert_eq!(
            code(malformed),
            (StatusCode::BAD_REQUEST, "InvalidAMIID.Malformed")
        );
        let unknown_kind = EngineError::MalformedId {
            kind: None,
            id: "foo".into(),
        };
        assert_eq!(code(unknown_kind).1, "InvalidID");
        let duplicate = ControlError::Duplicate {
            kind: KeyPair::KIND,
            id: "k".into(),
        };
        assert_eq!(ec2_code(&duplicate.into()).1, "InvalidKeyPair.Duplicate");
        let internal = EngineError::Internal("boom".into());
        assert_eq!(code(internal).0, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn only_internal_failures_are_server_errors() {
        let internal = ControlError::Internal("boom".into());
        assert_eq!(
            ec2_code(&internal.into()).0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let dry_run = ControlError::DryRunOperation;
        assert_eq!(ec2_code(&dry_run.into()).0, StatusCode::PRECONDITION_FAILED);
        let invalid = ControlError::InvalidParameterValue("bad".into());
        assert_eq!(ec2_code(&invalid.into()).0, StatusCode::BAD_REQUEST);
        // AWS lists it among server errors; a full disk does not clear on an SDK's retry.
        let disk = ControlError::InsufficientVolumeCapacity("full".into());
        assert_eq!(
            ec2_code(&disk.into()),
            (StatusCode::BAD_REQUEST, "InsufficientVolumeCapacity")
        );
        let rules = ControlError::LimitExceeded {
            limit: Limit::RulesPerGroup,
            message: String::new(),
        };
        assert_eq!(
            ec2_code(&rules.into()).1,
            "RulesPerSecurityGroupLimitExceeded"
        );
    }
}

//! EBS volume types and their size, IOPS and throughput rules, as AWS documents them.
//! The resulting IOPS and throughput are enforced on the data path by the block store.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    Gp2,
    Gp3,
    Io1,
    Io2,
    St1,
    Sc1,
    Standard,
}

/// What one volume type allows.
struct Rules {
    size_gib: (u64, u64),
    /// (min, max, max per GiB) when IOPS can be provisioned.
    provisioned_iops: Option<(u64, u64, u64)>,
    iops_required: bool,
    /// (min, max) MiB/s when throughput can be provisioned.
    provisioned_throughput: Option<(u64, u64)>,
}

impl VolumeType {
    pub fn parse(value: &str) -> Result<VolumeType> {
        Ok(match value {
            "gp2" => VolumeType::Gp2,
            "gp3" => VolumeType::Gp3,
            "io1" => VolumeType::Io1,
            "io2" => VolumeType::Io2,
            "st1" => VolumeType::St1,
            "sc1" => VolumeType::Sc1,
            "standard" => VolumeType::Standard,
            other => {
                return Err(Error::InvalidParameterValue(format!(
                    "Value ({other}) for parameter volumeType is invalid. Expecting one of gp2, gp3, io1, io2, st1, sc1, standard."
                )))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VolumeType::Gp2 => "gp2",
            VolumeType::Gp3 => "gp3",
            VolumeType::Io1 => "io1",
            VolumeType::Io2 => "io2",
            VolumeType::St1 => "st1",
            VolumeType::Sc1 => "sc1",
            VolumeType::Standard => "standard",
        }
    }

    fn rules(self) -> Rules {
        let plain = |min, max| Rules {
            size_gib: (min, max),
            provisioned_iops: None,
            iops_required: false,
            provisioned_throughput: None,
        };
        match self {
            VolumeType::Gp2 => plain(1, 16384),
            VolumeType::Gp3 => Rules {
                size_gib: (1, 16384),
                provisioned_iops: Some((3000, 16000, 500)),
                iops_required: false,
                provisioned_throughput: Some((125, 1000)),
            },
            VolumeType::Io1 => Rules {
                size_gib: (4, 16384),
                provisioned_iops: Some((100, 64000, 50)),
                iops_required: true,
                provisioned_throughput: None,
            },
            VolumeType::Io2 => Rules {
                size_gib: (4, 65536),
                provisioned_iops: Some((100, 256000, 1000)),
                iops_required: true,
                provisioned_throughput: None,
            },
            VolumeType::St1 | VolumeType::Sc1 => plain(125, 16384),
            VolumeType::Standard => plain(1, 1024),
        }
    }
}

/// A validated performance configuration: what DescribeVolumes reports and what the data path enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Performance {
    pub iops: u64,
    pub throughput_mib: u64,
}

/// Checks size, IOPS and throughput for a volume type and fills in AWS's defaults.
pub fn validate(
    volume_type: VolumeType,
    size_gib: u64,
    iops: Option<u64>,
    throughput: Option<u64>,
) -> Result<Performance> {
    let rules = volume_type.rules();
    let (min_size, max_size) = rules.size_gib;
    if size_gib < min_size || size_gib > max_size {
        return Err(Error::InvalidParameterValue(format!(
            "Volume of size {size_gib} GiB is out of range for {}: the size must be between {min_size} and {max_size} GiB.",
            volume_type.as_str()
        )));
    }
    let iops = match (iops, rules.provisioned_iops) {
        (Some(_), None) => {
            return Err(Error::InvalidParameterCombination(format!(
                "The parameter iops is not supported for {} volumes.",
                volume_type.as_str()
            )))
        }
        (None, Some(_)) if rules.iops_required => {
            return Err(Error::MissingParameter("iops".into()))
        }
        (Some(requested), Some((min, max, per_gib))) => {
            if requested < min || requested > max {
                return Err(Error::InvalidParameterValue(format!(
                    "Volume iops of {requested} is out of range for {}: it must be between {min} and {max}.",
                    volume_type.as_str()
                )));
            }
            if requested > per_gib.saturating_mul(size_gib) && requested > min {
                return Err(Error::InvalidParameterValue(format!(
                    "Iops to volume size ratio of {:.1} is too high; maximum is {per_gib}.",
                    requested as f64 / size_gib as f64
                )));
            }
            requested
        }
        (None, _) => baseline_iops(volume_type, size_gib),
    };
    let throughput_mib = match (throughput, rules.provisioned_throughput) {
        (Some(_), None) => {
            return Err(Error::InvalidParameterCombination(format!(
                "The parameter throughput is not supported for {} volumes.",
                volume_type.as_str()
            )))
        }
        (Some(requested), Some((min, max))) => {
            if requested < min || requested > max {
                return Err(Error::InvalidParameterValue(format!(
                    "Throughput of {requested} MiB/s is out of range: it must be between {min} and {max}."
                )));
            }
            // gp3 allows at most 0.25 MiB/s per provisioned IOPS.
            if requested * 4 > iops {
                return Err(Error::InvalidParameterValue(format!(
                    "Throughput to iops ratio of {:.3} is too high; maximum is 0.25 MiB/s per iops.",
                    requested as f64 / iops as f64
                )));
            }
            requested
        }
        (None, _) => baseline_throughput(volume_type, size_gib, iops),
    };
    Ok(Performance {
        iops,
        throughput_mib,
    })
}

/// AWS's performance for types whose IOPS are not provisioned.
fn baseline_iops(volume_type: VolumeType, size_gib: u64) -> u64 {
    match volume_type {
        VolumeType::Gp2 => (size_gib * 3).clamp(100, 16000),
        VolumeType::Gp3 => 3000,
        // Throughput-optimised HDDs: AWS rates them in MiB/s with 1 MiB I/Os; 500 IOPS max.
        VolumeType::St1 | VolumeType::Sc1 => 500,
        VolumeType::Standard => 200,
        VolumeType::Io1 | VolumeType::Io2 => 100,
    }
}

fn baseline_throughput(volume_type: VolumeType, size_gib: u64, iops: u64) -> u64 {
    match volume_type {
        VolumeType::Gp2 => {
            if size_gib > 170 {
                250
            } else {
                128
            }
        }
        VolumeType::Gp3 => 125,
        VolumeType::Io1 => (iops / 4).clamp(1, 1000),
        VolumeType::Io2 => (iops / 4).clamp(1, 4000),
        VolumeType::St1 => (size_gib * 40 / 1024).clamp(20, 500),
        VolumeType::Sc1 => (size_gib * 12 / 1024).clamp(6, 250),
        VolumeType::Standard => 90,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_aws() {
        assert_eq!(
            validate(VolumeType::Gp3, 8, None, None).ok(),
            Some(Performance {
                iops: 3000,
                throughput_mib: 125
            })
        );
        assert_eq!(
            validate(VolumeType::Gp2, 10, None, None)
                .map(|p| p.iops)
                .ok(),
            Some(100)
        );
        assert_eq!(
            validate(VolumeType::Gp2, 1000, None, None)
                .map(|p| p.iops)
                .ok(),
            Some(3000)
        );
        assert_eq!(
            validate(VolumeType::Io2, 100, Some(50000), None)
                .map(|p| p.iops)
                .ok(),
            Some(50000)
        );
    }

    #[test]
    fn rejects_what_aws_rejects() {
        assert!(matches!(
            validate(VolumeType::Gp2, 0, None, None),
            Err(Error::InvalidParameterValue(_))
        ));
        assert!(matches!(
            validate(VolumeType::Gp2, 16385, None, None),
            Err(Error::InvalidParameterValue(_))
        ));
        assert!(matches!(
            validate(VolumeType::Io1, 2, Some(100), None),
            Err(Error::InvalidParameterValue(_))
        ));
        assert!(matches!(
            validate(VolumeType::Io1, 10, None, None),
            Err(Error::MissingParameter(_))
        ));
        assert!(matches!(
            validate(VolumeType::Io1, 10, Some(1000), None),
            Err(Error::InvalidParameterValue(_))
        ));
        assert!(matches!(
            validate(VolumeType::Gp2, 10, Some(1000), None),
            Err(Error::InvalidParameterCombination(_))
        ));
        assert!(matches!(
            validate(VolumeType::Io2, 10, Some(1000), Some(200)),
            Err(Error::InvalidParameterCombination(_))
        ));
        assert!(matches!(
            validate(VolumeType::Gp3, 10, Some(3000), Some(1001)),
            Err(Error::InvalidParameterValue(_))
        ));
        assert!(matches!(
            validate(VolumeType::Gp3, 10, Some(3000), Some(800)),
            Err(Error::InvalidParameterValue(_))
        ));
        assert!(matches!(
            validate(VolumeType::St1, 100, None, None),
            Err(Error::InvalidParameterValue(_))
        ));
        assert!(matches!(
            validate(VolumeType::Standard, 2000, None, None),
            Err(Error::InvalidParameterValue(_))
        ));
    }
}

//! Forms made by botocore's own EC2 serializer decode back to the parameters they came from.

use std::process::Command;

use serde_json::Value;

/// Serializes varied requests with botocore and prints, per request, the action, the form and
/// the parameters as JSON (blobs as the base64 botocore sends). Exits 3 without botocore.
const SERIALIZE: &str = r##"
import base64, json, sys
try:
    import botocore.session, botocore.serialize
except ImportError:
    sys.exit(3)
service = botocore.session.get_session().get_service_model("ec2")
serializer = botocore.serialize.create_serializer("ec2")
tags = lambda kind: [{"ResourceType": kind, "Tags": [{"Key": "Name", "Value": "web"}, {"Key": "env", "Value": ""}]}]
filters = [{"Name": "tag:Name", "Values": ["web", "db"]}, {"Name": "state", "Values": ["available"]}]
requests = [
    ("DescribeRegions", {"RegionNames": ["us-east-1", "eu-west-1"], "AllRegions": True, "Filters": filters}),
    ("DescribeAvailabilityZones", {"ZoneNames": ["us-east-1a"], "AllAvailabilityZones": False, "DryRun": True}),
    ("DescribeAccountAttributes", {"AttributeNames": ["supported-platforms", "default-vpc"]}),
    ("DescribeInstanceTypes", {"InstanceTypes": ["t3.micro", "m5.large"], "MaxResults": 10, "NextToken": "abc",
                               "Filters": [{"Name": "vcpu-info.default-vcpus", "Values": ["2"]}]}),
    ("CreateKeyPair", {"KeyName": "k1", "KeyType": "ed25519", "KeyFormat": "pem", "TagSpecifications": tags("key-pair")}),
    ("ImportKeyPair", {"KeyName": "k2", "PublicKeyMaterial": b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI k@h"}),
    ("DescribeKeyPairs", {"KeyNames": ["k1", "k2"], "KeyPairIds": ["key-0123456789abcdef0"], "IncludePublicKey": True}),
    ("CreateTags", {"Resources": ["i-0123456789abcdef0", "vol-0123456789abcdef0"],
                    "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "x=y&z"}]}),
    ("DeleteTags", {"Resources": ["i-0123456789abcdef0"], "Tags": [{"Key": "a"}, {"Key": "b", "Value": "2"}]}),
    ("DescribeTags", {"Filters": filters, "MaxResults": 50, "NextToken": "t"}),
    ("CreateVolume", {"AvailabilityZone": "us-east-1a", "Size": 8, "VolumeType": "gp3", "Iops": 3000,
                      "Throughput": 125, "Encrypted": False, "SnapshotId": "snap-0123456789abcdef0",
                      "MultiAttachEnabled": False, "TagSpecifications": tags("volume")}),
    ("DescribeVolumes", {"VolumeIds": ["vol-0123456789abcdef0"], "Filters": filters, "MaxResults": 5}),
    ("ModifyVolume", {"VolumeId": "vol-0123456789abcdef0", "Size": 20, "VolumeType": "io2", "Iops": 5000}),
    ("CreateSnapshot", {"VolumeId": "vol-0123456789abcdef0", "Description": "nightly", "TagSpecifications": tags("snapshot")}),
    ("CopySnapshot", {"SourceSnapshotId": "snap-0123456789abcdef0", "SourceRegion": "us-east-1", "Encrypted": False}),
    ("DescribeSnapshots", {"OwnerIds": ["self"], "RestorableByUserIds": ["000000000000"], "MaxResults": 100}),
    ("DescribeImages", {"Owners": ["self", "amazon"], "ImageIds": ["ami-0123456789abcdef0"],
                        "ExecutableUsers": ["all"], "IncludeDeprecated": True, "Filters": filters}),
    ("RegisterImage", {"Name": "my-image", "Architecture": "x86_64", "RootDeviceName": "/dev/xvda",
                       "VirtualizationType": "hvm", "EnaSupport": True, "BootMode": "uefi",
                       "BlockDeviceMappings": [
                           {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-0123456789abcdef0", "VolumeSize": 8,
                                                               "DeleteOnTermination": True, "VolumeType": "gp3"}},
                           {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"}]}),
    ("CreateImage", {"InstanceId": "i-0123456789abcdef0", "Name": "snap of web", "NoReboot": True,
                     "BlockDeviceMappings": [{"DeviceName": "/dev/sdc", "NoDevice": ""}], "TagSpecifications": tags("image")}),
    ("RunInstances", {"ImageId": "ami-0123456789abcdef0", "MinCount": 1, "MaxCount": 3, "InstanceType": "t3.micro",
                      "KeyName": "k1", "UserData": "IyEvYmluL3NoCmVjaG8gaGk=", "SecurityGroupIds": ["sg-1", "sg-2"],
                      "ClientToken": "token-1", "Placement": {"AvailabilityZone": "us-east-1b", "Tenancy": "default"},
                      "BlockDeviceMappings": [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 16, "Iops": 3000, "Encrypted": False}}],
                      "TagSpecifications": tags("instance") + tags("volume"),
                      "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2, "HttpEndpoint": "enabled"},
                      "NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": "subnet-1", "Groups": ["sg-1"],
                                             "AssociatePublicIpAddress": True}],
                      "Monitoring": {"Enabled": False}, "InstanceInitiatedShutdownBehavior": "terminate",
                      "DisableApiTermination": False, "EbsOptimized": True, "CreditSpecification": {"CpuCredits": "unlimited"}}),
    ("DescribeInstances", {"InstanceIds": ["i-0123456789abcdef0", "i-0123456789abcdef1"], "Filters": filters,
                           "MaxResults": 6, "NextToken": "n"}),
    ("DescribeInstanceStatus", {"InstanceIds": ["i-0123456789abcdef0"], "IncludeAllInstances": True}),
    ("StopInstances", {"InstanceIds": ["i-0123456789abcdef0"], "Force": True, "Hibernate": False}),
    ("TerminateInstances", {"InstanceIds": ["i-0123456789abcdef0"]}),
    ("DescribeInstanceAttribute", {"InstanceId": "i-0123456789abcdef0", "Attribute": "userData"}),
    ("ModifyInstanceAttribute", {"InstanceId": "i-0123456789abcdef0", "InstanceType": {"Value": "t3.small"},
                                 "UserData": {"Value": b"#!/bin/sh\necho hi\n"},
                                 "DisableApiTermination": {"Value": True}, "Groups": ["sg-1"]}),
    ("AttachVolume", {"Device": "/dev/sdf", "InstanceId": "i-0123456789abcdef0", "VolumeId": "vol-0123456789abcdef0"}),
    ("DetachVolume", {"VolumeId": "vol-0123456789abcdef0", "Force": True}),
    ("GetConsoleOutput", {"InstanceId": "i-0123456789abcdef0", "Latest": True}),
    ("ModifyInstanceMetadataOptions", {"InstanceId": "i-0123456789abcdef0", "HttpTokens": "required",
                                       "HttpPutResponseHopLimit": 3, "InstanceMetadataTags": "enabled"}),
    ("DescribeVolumesModifications", {"VolumeIds": ["vol-0123456789abcdef0"], "Filters": filters}),
]

def as_sent(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: as_sent(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_sent(v) for v in value]
    return value

out = []
for action, params in requests:
    body = serializer.serialize_to_request(params, service.operation_model(action))["body"]
    form = [[k, v if isinstance(v, str) else str(v)] for k, v in body.items() if k not in ("Action", "Version")]
    out.append({"action": action, "form": form, "params": as_sent(params)})
print(json.dumps(out))
"##;

#[test]
fn botocore_forms_decode_to_their_parameters() {
    // `timeout` bounds the child: a hung interpreter must not hang the test run.
    let output = match Command::new("timeout")
        .args(["120", "python3", "-c", SERIALIZE])
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            eprintln!("skipped: cannot run python3 ({error})");
            return;
        }
    };
    if output.status.code() == Some(3) {
        eprintln!("skipped: botocore is not installed");
        return;
    }
    assert!(
        output.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let requests: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON from python3");
    assert!(requests.len() >= 20);
    for request in requests {
        let action = request["action"].as_str().expect("action");
        let form: Vec<(String, String)> =
            serde_json::from_value(request["form"].clone()).expect("form pairs");
        assert_eq!(
            ec2model::decode(action, &form),
            Ok(request["params"].clone()),
            "{action}: {form:?}"
        );
    }
}

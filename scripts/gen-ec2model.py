#!/usr/bin/env python3
"""Writes crates/ec2model/model/ec2.json from botocore's EC2 model: every operation name, and
for the operations in crates/ec2model/model/actions.txt their input/output shapes with the
closure of the shapes they reference (members in botocore's order, the order of elements in
answers). Deterministic (one shape per line, sorted); rerun after
editing actions.txt or upgrading botocore."""

import os
import sys

import botocore

from botocore_subset import load_json, read_list, select, write_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(ROOT, "crates", "ec2model", "model")
KEPT_SHAPE_KEYS = ("type", "required", "enum", "min", "max")
KEPT_MEMBER_KEYS = ("shape", "locationName", "queryName")
# Types the ec2model decoder understands; anything else must fail here, not at run time.
SUPPORTED_TYPES = {"structure", "list", "string", "integer", "long", "boolean", "double", "float",
                   "timestamp", "blob"}
# Enums botocore lists incompletely: EC2 accepts more values, so the decoder must not reject them.
OPEN_ENUMS = {
    "AccountAttributeName": "EC2 also answers max-instances, max-elastic-ips, vpc-max-elastic-ips "
                            "and vpc-max-security-groups-per-interface",
    "InstanceType": "an unknown type is the action's own error: InvalidInstanceType for "
                    "DescribeInstanceTypes, InvalidParameterValue for RunInstances",
}


def load_botocore_model():
    return load_json(os.path.join(os.path.dirname(botocore.__file__), "data", "ec2", "2016-11-15", "service-2.json"))


def slim_shape(name, shape):
    if shape["type"] not in SUPPORTED_TYPES:
        sys.exit(f"shape {name} has type {shape['type']}, which the ec2model decoder does not handle")
    slim = {k: shape[k] for k in KEPT_SHAPE_KEYS if k in shape}
    if name in OPEN_ENUMS:
        del slim["enum"]
    if "members" in shape:
        slim["members"] = {
            member_name: {k: member[k] for k in KEPT_MEMBER_KEYS if k in member}
            for member_name, member in shape["members"].items()
        }
    if "member" in shape:
        slim["member"] = {k: shape["member"][k] for k in KEPT_MEMBER_KEYS if k in shape["member"]}
    return slim


def main():
    model = load_botocore_model()
    actions = read_list(os.path.join(MODEL_DIR, "actions.txt"))
    modeled, shapes = select(model, "EC2", actions, slim_shape)
    # The metadata awsproto's model reader needs; members stay in botocore's order, which is
    # the order of elements in answers.
    metadata = {k: model["metadata"][k] for k in ("apiVersion", "protocol", "endpointPrefix")}
    write_model(os.path.join(MODEL_DIR, "ec2.json"), ("metadata", metadata),
                model["operations"], modeled, shapes, sort_keys=False)
    print(f"{len(modeled)} actions, {len(shapes)} shapes, {len(model['operations'])} operations")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes crates/ec2model/model/ec2.json from botocore's EC2 model: every operation name, and
for the operations in crates/ec2model/model/actions.txt their input/output shapes with the
closure of the shapes they reference. Deterministic (one shape per line, sorted); rerun after
editing actions.txt or upgrading botocore."""

import gzip
import json
import os
import sys

import botocore

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
    base = os.path.join(os.path.dirname(botocore.__file__), "data", "ec2", "2016-11-15", "service-2.json")
    if os.path.exists(base + ".gz"):
        with gzip.open(base + ".gz", "rt") as f:
            return json.load(f)
    with open(base) as f:
        return json.load(f)


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


def compact(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def write_model(path, version, operations, modeled, shapes):
    """One entry per line: small diffs when botocore or actions.txt change."""
    def block(items):
        return ",\n".join(items)

    with open(path, "w") as f:
        f.write("{\n")
        f.write(f'"version":{compact(version)},\n')
        f.write('"operations":[\n' + block(compact(op) for op in sorted(operations)) + "\n],\n")
        f.write('"modeled":{\n' + block(f"{compact(k)}:{compact(v)}" for k, v in sorted(modeled.items())) + "\n},\n")
        f.write('"shapes":{\n' + block(f"{compact(k)}:{compact(v)}" for k, v in sorted(shapes.items())) + "\n}\n")
        f.write("}\n")


def main():
    model = load_botocore_model()
    with open(os.path.join(MODEL_DIR, "actions.txt")) as f:
        actions = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    shapes, pending, modeled = {}, [], {}
    for action in actions:
        operation = model["operations"].get(action)
        if operation is None:
            sys.exit(f"{action} is not an EC2 operation")
        entry = {}
        for direction in ("input", "output"):
            if direction in operation:
                entry[direction] = operation[direction]["shape"]
                pending.append(operation[direction]["shape"])
        modeled[action] = entry
    while pending:
        name = pending.pop()
        if name in shapes:
            continue
        shape = model["shapes"][name]
        shapes[name] = slim_shape(name, shape)
        pending.extend(member["shape"] for member in shape.get("members", {}).values())
        if "member" in shape:
            pending.append(shape["member"]["shape"])
    write_model(os.path.join(MODEL_DIR, "ec2.json"), model["metadata"]["apiVersion"],
                model["operations"], modeled, shapes)
    print(f"{len(modeled)} actions, {len(shapes)} shapes, {len(model['operations'])} operations")


if __name__ == "__main__":
    main()

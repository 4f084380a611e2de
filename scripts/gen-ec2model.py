#!/usr/bin/env python3
"""Writes crates/ec2model/model/ec2.json from botocore's EC2 model: every operation name, and
for the operations in crates/ec2model/model/actions.txt their input/output shapes with the
closure of the shapes they reference. Deterministic; rerun after editing actions.txt."""

import gzip
import json
import os
import sys

import botocore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(ROOT, "crates", "ec2model", "model")
KEPT_SHAPE_KEYS = ("type", "required", "enum", "min", "max")
KEPT_MEMBER_KEYS = ("shape", "locationName", "queryName")


def load_botocore_model():
    base = os.path.join(os.path.dirname(botocore.__file__), "data", "ec2", "2016-11-15", "service-2.json")
    if os.path.exists(base + ".gz"):
        with gzip.open(base + ".gz", "rt") as f:
            return json.load(f)
    with open(base) as f:
        return json.load(f)


def slim_shape(shape):
    slim = {k: shape[k] for k in KEPT_SHAPE_KEYS if k in shape}
    if "members" in shape:
        slim["members"] = {
            name: {k: member[k] for k in KEPT_MEMBER_KEYS if k in member}
            for name, member in shape["members"].items()
        }
    for key in ("member", "key", "value"):
        if key in shape:
            slim[key] = {k: shape[key][k] for k in KEPT_MEMBER_KEYS if k in shape[key]}
    return slim


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
        shapes[name] = slim_shape(shape)
        for member in shape.get("members", {}).values():
            pending.append(member["shape"])
        for key in ("member", "key", "value"):
            if key in shape:
                pending.append(shape[key]["shape"])
    out = {
        "version": model["metadata"]["apiVersion"],
        "operations": sorted(model["operations"]),
        "modeled": dict(sorted(modeled.items())),
        "shapes": dict(sorted(shapes.items())),
    }
    with open(os.path.join(MODEL_DIR, "ec2.json"), "w") as f:
        json.dump(out, f, indent=0, sort_keys=True)
        f.write("\n")
    print(f"{len(modeled)} actions, {len(shapes)} shapes, {len(out['operations'])} operations")


if __name__ == "__main__":
    main()

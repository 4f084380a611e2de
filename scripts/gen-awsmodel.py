#!/usr/bin/env python3
"""Writes the committed model subsets of crates/awsmodel/model from botocore's models:

- `<service>.json` for each service in SERVICES: its protocol metadata, every operation name,
  and for the operations listed in `<service>.txt` their input/output shapes with the closure
  of the shapes they reference;
- `services.json`: for every botocore service, its SigV4 signing name, protocols, JSON target
  prefix and version, and XML namespace, so that nimbus can answer a service it does not have
  in that service's own protocol.

Deterministic (one entry per line, sorted); rerun after editing a `.txt` list or upgrading
botocore."""

import json
import os
import sys

import botocore

from botocore_subset import load_json, read_list, select, write_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(ROOT, "crates", "awsmodel", "model")
DATA_DIR = os.path.join(os.path.dirname(botocore.__file__), "data")
# nimbus's file name (the SigV4 signing name) → botocore's service directory.
SERVICES = {
    "sts": "sts",
    "iam": "iam",
    "monitoring": "cloudwatch",
    "autoscaling": "autoscaling",
    "elasticloadbalancing": "elbv2",
    "ssm": "ssm",
}
KEPT_METADATA_KEYS = ("apiVersion", "protocol", "protocols", "targetPrefix", "jsonVersion",
                      "xmlNamespace", "signingName", "endpointPrefix", "serviceId",
                      "awsQueryCompatible")
KEPT_SHAPE_KEYS = ("type", "required", "enum", "min", "max", "flattened", "timestampFormat")
KEPT_MEMBER_KEYS = ("shape", "locationName", "queryName", "flattened")
# Types the awsproto codecs understand; anything else must fail here, not at run time.
SUPPORTED_TYPES = {"structure", "list", "map", "string", "integer", "long", "boolean", "double",
                   "float", "timestamp", "blob"}


def latest_model(directory):
    """botocore's newest API version of a service (the one clients use by default)."""
    versions = sorted(v for v in os.listdir(os.path.join(DATA_DIR, directory))
                      if os.path.isdir(os.path.join(DATA_DIR, directory, v)))
    for version in reversed(versions):
        path = os.path.join(DATA_DIR, directory, version, "service-2.json")
        if os.path.exists(path) or os.path.exists(path + ".gz"):
            return load_json(path)
    return None


def slim_member(member):
    return {k: member[k] for k in KEPT_MEMBER_KEYS if k in member}


def slim_shape(name, shape):
    if shape["type"] not in SUPPORTED_TYPES:
        sys.exit(f"shape {name} has type {shape['type']}, which the awsproto codecs do not handle")
    slim = {k: shape[k] for k in KEPT_SHAPE_KEYS if k in shape}
    if "members" in shape:
        slim["members"] = {n: slim_member(m) for n, m in shape["members"].items()}
    for part in ("member", "key", "value"):
        if part in shape:
            slim[part] = slim_member(shape[part])
    return slim


def generate_service(name, directory):
    model = latest_model(directory)
    operations = read_list(os.path.join(MODEL_DIR, f"{name}.txt"))
    modeled, shapes = select(model, name, operations, slim_shape)
    metadata = {k: model["metadata"][k] for k in KEPT_METADATA_KEYS if k in model["metadata"]}
    # botocore's own key order: member order is the order of XML elements in responses.
    write_model(os.path.join(MODEL_DIR, f"{name}.json"), ("metadata", metadata), model["operations"],
                modeled, shapes, sort_keys=False)
    print(f"{name}: {len(modeled)} modeled, {len(shapes)} shapes, {len(model['operations'])} operations")


def generate_table():
    """Signing name → protocol facts. Where two botocore services share a signing name (elb and
    elbv2), the one listed later alphabetically wins, which is the newer API."""
    table = {}
    for directory in sorted(os.listdir(DATA_DIR)):
        if not os.path.isdir(os.path.join(DATA_DIR, directory)):
            continue
        model = latest_model(directory)
        if model is None:
            continue
        metadata = model["metadata"]
        signing_name = metadata.get("signingName", metadata["endpointPrefix"])
        table[signing_name] = {
            k: metadata[k] for k in ("protocol", "targetPrefix", "jsonVersion", "xmlNamespace")
            if k in metadata
        }
        if "awsQueryCompatible" in metadata:
            table[signing_name]["awsQueryCompatible"] = True
    with open(os.path.join(MODEL_DIR, "services.json"), "w") as f:
        lines = (f"{json.dumps(k)}:{json.dumps(v, sort_keys=True, separators=(',', ':'))}"
                 for k, v in sorted(table.items()))
        f.write("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"services.json: {len(table)} signing names")


def main():
    for name, directory in SERVICES.items():
        generate_service(name, directory)
    generate_table()


if __name__ == "__main__":
    main()

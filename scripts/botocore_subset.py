"""What gen-ec2model.py and gen-awsmodel.py share: reading botocore's models, the operation
lists, and the closure of shapes a set of operations references, written one entry per line."""

import gzip
import json
import os
import sys


def load_json(path):
    """A botocore data file, gzipped or not."""
    if os.path.exists(path + ".gz"):
        with gzip.open(path + ".gz", "rt") as f:
            return json.load(f)
    with open(path) as f:
        return json.load(f)


def read_list(path):
    """An operation list: one name a line, `#` comments."""
    with open(path) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def select(model, service, operations, slim_shape):
    """The listed operations' input/output shapes (and Query result wrappers), with every shape
    they reference, each made small by `slim_shape(name, shape)`."""
    shapes, pending, modeled = {}, [], {}
    for name in operations:
        operation = model["operations"].get(name)
        if operation is None:
            sys.exit(f"{name} is not a {service} operation")
        entry = {}
        for direction in ("input", "output"):
            if direction in operation:
                entry[direction] = operation[direction]["shape"]
                pending.append(operation[direction]["shape"])
        if "resultWrapper" in operation.get("output", {}):
            entry["resultWrapper"] = operation["output"]["resultWrapper"]
        modeled[name] = entry
    while pending:
        name = pending.pop()
        if name in shapes:
            continue
        shape = model["shapes"][name]
        shapes[name] = slim_shape(name, shape)
        pending.extend(member["shape"] for member in shape.get("members", {}).values())
        pending.extend(shape[part]["shape"] for part in ("member", "key", "value") if part in shape)
    return modeled, shapes


def write_model(path, header, operations, modeled, shapes, sort_keys):
    """One entry per line: small diffs when botocore or a list changes. `header` is the first
    entry, (key, value)."""
    def compact(value):
        return json.dumps(value, sort_keys=sort_keys, separators=(",", ":"))

    def block(items):
        return ",\n".join(items)

    with open(path, "w") as f:
        f.write("{\n")
        f.write(f'"{header[0]}":{compact(header[1])},\n')
        f.write('"operations":[\n' + block(compact(op) for op in sorted(operations)) + "\n],\n")
        f.write('"modeled":{\n' + block(f"{compact(k)}:{compact(v)}" for k, v in sorted(modeled.items())) + "\n},\n")
        f.write('"shapes":{\n' + block(f"{compact(k)}:{compact(v)}" for k, v in sorted(shapes.items())) + "\n}\n")
        f.write("}\n")

#!/usr/bin/env python3
"""Validates a JSON document against the subset of JSON Schema that docs/bench-schema.json
uses (type, a list of types, null, required, properties, items, enum, minimum,
maximum), so the test needs nothing
beyond Python itself. Usage: validate_json.py SCHEMA DOCUMENT"""
import json
import sys

TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def is_type(node, t):
    if t == "integer":
        return isinstance(node, int) and not isinstance(node, bool)
    if t == "number":
        return isinstance(node, (int, float)) and not isinstance(node, bool)
    if t == "null":
        return node is None
    return isinstance(node, TYPES[t])


def check(node, schema, path):
    t = schema.get("type")
    # A list of types ("number", "null") accepts any of them.
    types = t if isinstance(t, list) else [t] if t else []
    if types and not any(is_type(node, x) for x in types):
        raise ValueError(f"{path}: expected {t}, got {type(node).__name__}")
    if node is None:
        return
    if "enum" in schema and node not in schema["enum"]:
        raise ValueError(f"{path}: {node!r} not in {schema['enum']}")
    if "minimum" in schema and node < schema["minimum"]:
        raise ValueError(f"{path}: {node} below {schema['minimum']}")
    if "maximum" in schema and node > schema["maximum"]:
        raise ValueError(f"{path}: {node} above {schema['maximum']}")
    if isinstance(node, dict):
        for key in schema.get("required", []):
            if key not in node:
                raise ValueError(f"{path}: missing {key}")
        for key, sub in schema.get("properties", {}).items():
            if key in node:
                check(node[key], sub, f"{path}.{key}")
    if isinstance(node, list) and "items" in schema:
        for i, item in enumerate(node):
            check(item, schema["items"], f"{path}[{i}]")


def main():
    with open(sys.argv[1]) as f:
        schema = json.load(f)
    with open(sys.argv[2]) as f:
        doc = json.load(f)
    try:
        check(doc, schema, "$")
    except ValueError as e:
        print(f"invalid: {e}")
        return 1
    if not doc["rows"]:
        print("invalid: no rows")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The OPA side of the broker's differential test (broker/tests/opa_conformance.rs).

    oracle.py --dir SET_DIR --dialect v0|v1 --rule data.platform.p.deny_x [--rule ...] INPUT.json...

Loads every `.rego` file under SET_DIR (not `*_test.rego`, as the broker)
into real OPA (the Go library of the PyPI wheel opa-golib-python-bindings,
found on PYTHONPATH, e.g. $OPA_PYTHONPATH), evaluates each rule on each input
document and prints one JSON object:

    {"INPUT.json": {"data.platform.p.deny_x": {"value": ...} | {"error": "..."}, ...}, ...}

An undefined rule is absent. An error (parse, compile or evaluation) is
{"error": message}, for every rule it stops.

Dialects: the bindings parse modules as Rego v1 only (OPA 1.x's default; they
expose no rego_version or --v0-compatible switch). A v0 set is therefore
rewritten to v1 first the way `opa fmt --v0-v1` does for rule heads: `if`
before every rule body, `contains` in partial set heads (`p[x] { ... }` ->
`p contains x if { ... }`), `else = v { ... }` -> `else = v if { ... }`.
Only heads are touched, and only in the layout the corpus uses: a head on
one line at column 0 ending with `{` (or a `} else ... {` line). Anything else
v0 allows and v1 does not (keywords as names, deprecated builtins) is kept as
is and OPA reports it, which the test shows as an OPA error.
"""

import argparse
import json
import os
import re
import sys

from opa_bindings.engine import OpaEngine, OpaError, OpaUndefinedError

# `name[key] {` (partial set) but not `name[key] = value {` (partial object).
_PARTIAL_SET = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[(.+)\]\s*\{\s*$")
_NOT_A_HEAD = ("package ", "import ", "default ", "#", "}", " ", "\t")


def v0_to_v1(text):
    out = []
    for line in text.split("\n"):
        stripped = line.rstrip()
        if stripped.startswith("} else") and stripped.endswith("{") and " if " not in stripped:
            line = stripped[:-1].rstrip() + " if {"
        elif (
            stripped.endswith("{")
            and stripped
            and not stripped.startswith(_NOT_A_HEAD)
            and not re.search(r"\bif\b", stripped)
        ):
            m = _PARTIAL_SET.match(stripped)
            if m and "=" not in stripped.split("]")[-1]:
                line = f"{m.group(1)} contains {m.group(2)} if {{"
            else:
                line = stripped[:-1].rstrip() + " if {"
        out.append(line)
    return "\n".join(out)


def load_files(root):
    files = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            if name.endswith(".rego") and not name.endswith("_test.rego"):
                path = os.path.join(dirpath, name)
                files.append((os.path.relpath(path, root), path))
    return sorted(files)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--dialect", choices=("v0", "v1"), required=True)
    ap.add_argument("--rule", action="append", default=[])
    ap.add_argument("--show-v1", action="store_true", help="print the v1 text of a v0 set and exit")
    ap.add_argument("inputs", nargs="*")
    args = ap.parse_args()

    engine = OpaEngine()
    engine.print_handler = lambda _msg, _loc: None
    load_error = None
    for rel, path in load_files(args.dir):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if args.dialect == "v0":
            text = v0_to_v1(text)
        if args.show_v1:
            print(f"# ---- {rel}\n{text}")
            continue
        try:
            engine.add_policy(rel, text)
        except OpaError as e:
            load_error = load_error or f"{rel}: {e}"
    if args.show_v1:
        return 0

    # Rules grouped by package: a package's document is evaluated at once
    # (one pass over the input instead of one per rule); only when that fails
    # are its rules evaluated one by one, so an error is the failing rule's.
    packages = {}
    for rule in args.rule:
        path = rule[len("data."):] if rule.startswith("data.") else rule
        package, _, name = path.rpartition(".")
        packages.setdefault(package, []).append((rule, path, name))

    results = {}
    for input_path in args.inputs:
        with open(input_path, encoding="utf-8") as f:
            document = json.load(f)
        values = {}
        for package, rules in packages.items():
            if load_error is not None:
                for rule, _path, _name in rules:
                    values[rule] = {"error": load_error}
                continue
            try:
                doc = engine.eval_document(package, document)
                for rule, _path, name in rules:
                    if name in doc:
                        values[rule] = {"value": doc[name]}
                continue
            except OpaUndefinedError:
                continue
            except OpaError:
                pass
            for rule, path, _name in rules:
                try:
                    values[rule] = {"value": engine.eval_document(path, document)}
                except OpaUndefinedError:
                    pass
                except OpaError as e:
                    values[rule] = {"error": str(e)}
        results[input_path] = values
    json.dump(results, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

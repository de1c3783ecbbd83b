#!/usr/bin/env python3
"""Benchmark policy evaluation on a large plan: the broker (compiled and interpreter) vs OPA.

    python3 bench/policy.py                  # 10,000 resources, 7 runs
    python3 bench/policy.py --resources 2000 --runs 3

What runs (Python 3 stdlib; OPA from .tools/opa, installed by `scripts/setup --test`):

  corpus   every policy set of broker/tests/opa/corpus (the OPA differential test's own
           policies: conftest v0, v0 with future keywords, v1, Spacelift and Scalr style,
           walk, sprintf, net, time), except the errors_* sets, which fail by design.
  plan     a generated `terraform show -json` document of --resources resources
           (S3 buckets, instances, security groups, databases, volumes, Google and Azure
           resources and platform offerings, in modules, with tags, nested blocks, unknown
           and sensitive values, every action), seeded.
  broker   `platform-broker policy eval --plan PLAN --policy CORPUS --timings` (release
           build): the evaluation's wall time and each set's rule time, as the broker
           reports them; --runs times with the compiled evaluator (the default), then 3
           with PLATFORM_POLICY_ENGINE=interpreter. Also the command's whole wall time
           (reading and redacting the plan, pricing, input building, evaluation, report).
  opa      OPA 1.x (the opa-golib-python-bindings shared library, in this process) on the
           same input document (`--input-out`), one query per set (`data.<package>`),
           timed per set; 3 runs.

Printed: per set, the rules, the broker's compiled and interpreter times and OPA's (best
of the runs), then the totals and the ratios. Target: the broker's evaluation < 250 ms on
10,000 resources.
"""

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "broker" / "tests" / "opa" / "corpus"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the plan


def generate_plan(n, seed=7):
    rng = random.Random(seed)
    kinds = [
        "aws_s3_bucket", "aws_instance", "aws_security_group", "aws_db_instance",
        "aws_ebs_volume", "google_storage_bucket", "azurerm_storage_account",
        "platform_postgres_database", "aws_iam_role", "aws_lb",
    ]
    actions_pool = [["create"], ["update"], ["delete"], ["delete", "create"], ["no-op"],
                    ["no-op"], ["no-op"], ["create"], ["update"], ["no-op"]]
    changes, planned, prior, configured = [], [], [], []
    for i in range(n):
        ty = kinds[i % len(kinds)]
        name = f"r{i}"
        module = f"module.svc{i % 40}." if i % 3 else ""
        address = f"{module}{ty}.{name}"
        tags = {"team": rng.choice(["checkout", "search", "payments", "infra"]),
                "env": rng.choice(["production", "staging", "dev"])}
        if i % 11 == 0:
            tags.pop("team")
        attrs = {"tags": tags, "name": f"{ty}-{i}"}
        if ty == "aws_s3_bucket":
            attrs.update(acl=rng.choice(["private", "private", "public-read"]),
                         versioning=[{"enabled": i % 4 != 0}],
                         server_side_encryption_configuration=[] if i % 9 == 0 else [
                             {"rule": [{"apply_server_side_encryption_by_default": [
                                 {"sse_algorithm": "aws:kms"}]}]}])
        elif ty == "aws_instance":
            attrs.update(instance_type=rng.choice(["t3.micro", "m5.large", "x1e.32xlarge"]),
                         ami="ami-0123456789abcdef0", monitoring=i % 2 == 0,
                         root_block_device=[{"volume_size": rng.choice([8, 100, 2000]),
                                             "encrypted": i % 6 != 0}])
        elif ty == "aws_security_group":
            attrs.update(ingress=[{"from_port": p, "to_port": p, "protocol": "tcp",
                                   "cidr_blocks": [rng.choice(["10.0.0.0/8", "0.0.0.0/0",
                                                               "192.168.1.0/24"])]}
                                  for p in rng.sample([22, 80, 443, 3389, 5432], 2)])
        elif ty == "aws_db_instance":
            attrs.update(engine="postgres", instance_class="db.r5.large",
                         storage_encrypted=i % 5 != 0, publicly_accessible=i % 13 == 0,
                         allocated_storage=rng.choice([20, 100, 1000]),
                         password=None)
        elif ty == "aws_ebs_volume":
            attrs.update(size=rng.choice([10, 500, 4000]), encrypted=i % 7 != 0, type="gp3")
        elif ty == "google_storage_bucket":
            attrs.update(location="EU", uniform_bucket_level_access=i % 2 == 0,
                         labels=tags)
        elif ty == "azurerm_storage_account":
            attrs.update(account_tier="Standard", min_tls_version=rng.choice(["TLS1_0", "TLS1_2"]),
                         enable_https_traffic_only=i % 8 != 0)
        elif ty == "platform_postgres_database":
            attrs.update(tier=rng.choice(["small", "standard", "premium"]),
                         offering_version="1.2.0", connection_limit=20)
        elif ty == "aws_iam_role":
            attrs.update(assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                 "Action": "sts:AssumeRole"}]}))
        else:
            attrs.update(internal=i % 2 == 0, load_balancer_type="application")
        actions = actions_pool[i % len(actions_pool)]
        before = None if actions == ["create"] else dict(attrs)
        after = None if actions == ["delete"] else dict(attrs)
        if after is not None and actions == ["update"]:
            after = dict(after, tags=dict(tags, revision=str(i)))
        unknown = {"id": True, "arn": True} if after is not None else False
        sensitive = {"password": True} if ty == "aws_db_instance" else {}
        changes.append({
            "address": address, "module_address": module.rstrip(".") or None, "mode": "managed",
            "type": ty, "name": name, "provider_name": "registry.terraform.io/hashicorp/aws",
            "change": {"actions": actions, "before": before, "after": after,
                       "after_unknown": unknown, "before_sensitive": sensitive,
                       "after_sensitive": sensitive},
        })
        entry = {"address": address, "mode": "managed", "type": ty, "name": name,
                 "provider_name": "registry.terraform.io/hashicorp/aws", "schema_version": 0,
                 "sensitive_values": sensitive}
        if after is not None:
            planned.append(dict(entry, values=after))
            configured.append({"address": f"{ty}.{name}", "mode": "managed", "type": ty,
                               "name": name, "provider_config_key": "aws",
                               "expressions": {"tags": {"references": ["local.tags"]}}})
        if before is not None:
            prior.append(dict(entry, values=before))
    for c in changes:
        if c["module_address"] is None:
            del c["module_address"]
    return {
        "format_version": "1.2", "terraform_version": "1.11.4",
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "prior_state": {"format_version": "1.0", "terraform_version": "1.11.4",
                        "values": {"root_module": {"resources": prior}}},
        "configuration": {"provider_config": {"aws": {"name": "aws"}},
                          "root_module": {"resources": configured}},
    }


# ------------------------------------------------------------------ the corpus


def corpus_sets():
    sets = []
    for d in sorted(CORPUS.iterdir()):
        if d.is_dir() and not d.name.startswith("errors_"):
            files = sorted(d.rglob("*.rego"))
            sets.append((d.name, d, "v0" if "_v0" in d.name else "v1", files))
    return sets


def write_config(path, sets):
    hcl = 'timeout = "300s"\n'
    for name, d, dialect, _ in sets:
        hcl += (f'policy_set "{name}" {{\n  path        = "{d}"\n'
                f'  enforcement = "advisory"\n  syntax      = "{dialect}"\n}}\n')
    path.write_text(hcl)


# ------------------------------------------------------------------ runs

TIMING_LINE = re.compile(r"^  (\S+)\s+(\d+)\s+(\d+)\s+([\d.]+)$")


def broker_run(binary, plan, config, engine, input_out=None):
    env = dict(os.environ, PLATFORM_POLICY_ENGINE=engine)
    cmd = [str(binary), "policy", "eval", "--plan", str(plan), "--policy", str(config),
           "--timings", "--json"]
    if input_out:
        cmd += ["--input-out", str(input_out)]
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = (time.perf_counter() - t) * 1000
    if r.returncode not in (0, 3, 4):
        log(r.stderr)
        raise SystemExit(f"bench: policy eval failed (exit {r.returncode})")
    evaluation, sets = None, {}
    for line in r.stderr.splitlines():
        m = re.match(r"policy evaluation: ([\d.]+) ms wall time", line)
        if m:
            evaluation = float(m.group(1))
        m = TIMING_LINE.match(line)
        if m and m.group(1) != "set":
            sets[m.group(1)] = (int(m.group(2)), int(m.group(3)), float(m.group(4)))
    findings = len(json.loads(r.stdout).get("findings", []))
    return wall, evaluation, sets, findings


def opa_times(input_path, sets, runs):
    opa_path = os.environ.get("OPA_PYTHONPATH")
    if not opa_path:
        log("bench: OPA_PYTHONPATH unset (run scripts/setup --test and . .tools/env): no OPA column")
        return None
    sys.path.insert(0, opa_path)
    sys.path.insert(0, str(REPO / "broker" / "tests" / "opa"))
    from opa_bindings.engine import OpaEngine  # noqa: E402
    import oracle  # noqa: E402  (the differential test's v0 -> v1 head rewrite)
    doc = json.loads(Path(input_path).read_text())
    times = {}
    baseline = OpaEngine()
    baseline.add_policy("baseline.rego", "package baseline\n\nok := true\n")
    crossing = None
    for _ in range(runs):
        t = time.perf_counter()
        baseline.eval_query("x := data.baseline.ok", doc)
        ms = (time.perf_counter() - t) * 1000
        crossing = ms if crossing is None else min(crossing, ms)
    baseline.close()
    log(f"bench: handing the input to OPA takes {crossing:.0f} ms per query (subtracted)")
    for name, d, dialect, files in sets:
        engine = OpaEngine()
        packages = set()
        for f in files:
            text = f.read_text()
            if dialect == "v0":
                text = oracle.v0_to_v1(text)
            engine.add_policy(str(f), text)
            m = re.search(r"^package\s+(\S+)", text, re.M)
            if m:
                packages.add(m.group(1))
        # One query per set (every package of it), so the input crosses
        # into OPA once per set and run; a trivial query on the same input
        # measures that crossing, which is subtracted.
        query = "; ".join(f"x{i} := data.{p}" for i, p in enumerate(sorted(packages)))
        best = None
        for _ in range(runs):
            t = time.perf_counter()
            try:
                engine.eval_query(query, doc)
            except Exception as e:  # an erroring rule: still timed
                log(f"bench: OPA on set {name}: {str(e)[:120]}")
            ms = (time.perf_counter() - t) * 1000
            best = ms if best is None else min(best, ms)
        times[name] = max(best - crossing, 0.0)
        engine.close()
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resources", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--no-opa", action="store_true")
    args = ap.parse_args()

    log("bench: cargo build --release -p platform-broker ...")
    subprocess.run(["cargo", "build", "--release", "-p", "platform-broker"], cwd=REPO, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "release" / "platform-broker"

    sets = corpus_sets()
    nfiles = sum(len(s[3]) for s in sets)
    with tempfile.TemporaryDirectory(prefix="policy-bench.") as tmp:
        tmp = Path(tmp)
        plan = tmp / "plan.json"
        plan.write_text(json.dumps(generate_plan(args.resources)))
        config = tmp / "policy.hcl"
        write_config(config, sets)
        log(f"bench: {args.resources} resources ({plan.stat().st_size / 1e6:.1f} MB plan), "
            f"{len(sets)} sets, {nfiles} rule files")
        input_doc = tmp / "input.json"
        broker_run(binary, plan, config, "compiled", input_out=input_doc)  # warm-up + input
        compiled = [broker_run(binary, plan, config, "compiled") for _ in range(args.runs)]
        interpreted = [broker_run(binary, plan, config, "interpreter") for _ in range(3)]
        opa = None if args.no_opa else opa_times(input_doc, sets, 3)

    def best_set(runs, name):
        return min(r[2][name][2] for r in runs if name in r[2])

    print(f"\npolicy bench: {args.resources} resources, {len(sets)} sets, {nfiles} rule files, "
          f"{compiled[0][3]} findings")
    print(f"  {'set':<22} {'rules':>5} {'compiled':>8} {'broker ms':>10} {'interp ms':>10}"
          f" {'OPA ms':>9}")
    for name, _, _, _ in sets:
        rules, ncompiled, _ = compiled[0][2].get(name, (0, 0, 0))
        o = f"{opa[name]:9.1f}" if opa else f"{'-':>9}"
        print(f"  {name:<22} {rules:>5} {ncompiled:>8} {best_set(compiled, name):10.1f}"
              f" {best_set(interpreted, name):10.1f} {o}")
    ev_c = [r[1] for r in compiled]
    ev_i = [r[1] for r in interpreted]
    wall_c = [r[0] for r in compiled]
    print("  (set times are rule time summed over the evaluation threads; OPA's run on one)")
    print(f"\n  broker evaluation, compiled:    min {min(ev_c):7.1f} ms  median "
          f"{statistics.median(ev_c):7.1f} ms")
    print(f"  broker evaluation, interpreter: min {min(ev_i):7.1f} ms  median "
          f"{statistics.median(ev_i):7.1f} ms  (interpreter / compiled "
          f"{statistics.median(ev_i) / statistics.median(ev_c):.2f}x)")
    if opa:
        total = sum(opa.values())
        print(f"  OPA, all sets:                  {total:7.1f} ms  (OPA / broker compiled "
              f"{total / statistics.median(ev_c):.1f}x)")
    print(f"  whole `policy eval` command:    median {statistics.median(wall_c):7.1f} ms "
          f"(reading, redacting and pricing the plan, building the input, evaluating)")
    target_ok = statistics.median(ev_c) < 250
    print(f"  target (broker evaluation < 250 ms): {'met' if target_ok else 'MISSED'}")


if __name__ == "__main__":
    main()

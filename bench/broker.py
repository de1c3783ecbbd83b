#!/usr/bin/env python3
"""Benchmark `platform-broker plan` against a bare `terraform plan -out` + `terraform show -json`.

One command (Python 3 stdlib only; reuses bench/schema.py and bench/lifecycle.py helpers):

    python3 bench/broker.py            # 1000 resources, 5 repetitions, every Terraform
    python3 bench/broker.py -n 9 --count 2000

For each available Terraform (PATH, then .tools' 1.0.3) and each scenario, the two
commands run interleaved (bare, broker, broker, bare, ...) on the same working directory:

  create   500 x platform_postgres_database + 500 x null_resource, no state: the plan
           creates 1000 resources (the provider's plan needs no database).
  refresh  1000 x null_resource already in the state (applied once by terraform):
           a plan that refreshes 1000 objects and finds nothing to do.

  bare     terraform plan -input=false -lock=false -detailed-exitcode -out=tfplan
           terraform show -json tfplan > plan.json
  broker   platform-broker plan --policy examples/policies/policy.hcl
           --pricebook examples/pricebooks/aws.hcl   (compiled-in catalog)
           i.e. the same two terraform commands plus everything the broker adds:
           state lineage/serial, plan identity digests, parsing and redacting the plan
           once, cost, the example policy sets (Rego), the report and bundle, and a
           durable (fsync) audit event.

Target: broker <= 1.05 x bare (median of each). The broker's own time is printed too
(from the plan audit event's durations_ms: the run's wall time minus Terraform's, and the
policy evaluation within it), so the ratio can be read against where the time goes.
Noise between runs is large on a shared 2-core machine: the ratio is measured side by
side, the absolute numbers are not comparable across runs.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import schema as common  # noqa: E402
import lifecycle as lc  # noqa: E402

REPO = common.REPO
log, die = common.log, common.die


def build():
    target = Path(os.environ.get("CARGO_TARGET_DIR") or (REPO / "target"))
    log("bench: cargo build --release -p terraform-provider-platform -p platform-broker ...")
    r = subprocess.run(["cargo", "build", "--release", "--locked", "-p",
                        "terraform-provider-platform", "-p", "platform-broker"], cwd=REPO)
    if r.returncode != 0:
        die("cargo build failed")
    provider = target / "release" / "terraform-provider-platform"
    broker = target / "release" / "platform-broker"
    for b in (provider, broker):
        if not b.is_file():
            die(f"{b} not found after the build")
    return provider, broker


def mirror_config(root, tag, provider, null_mirror):
    """A CLI config with filesystem mirrors for both providers (init works offline)."""
    mirror = root / "mirror"
    pdir = mirror / "registry.terraform.io/platform/platform/0.1.0/linux_amd64"
    if not pdir.exists():
        pdir.mkdir(parents=True)
        shutil.copy2(provider, pdir / "terraform-provider-platform_v0.1.0")
    cli = root / f"{tag}.tfrc"
    cli.write_text(
        'disable_checkpoint = true\nprovider_installation {\n'
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n'
        '    include = ["registry.terraform.io/platform/platform"]\n  }\n'
        f'  filesystem_mirror {{\n    path    = "{null_mirror}"\n'
        '    include = ["registry.terraform.io/hashicorp/null"]\n  }\n}\n')
    return cli


def create_tf(n):
    half = n // 2
    return (
        'terraform {\n  required_providers {\n'
        '    platform = { source = "platform/platform", version = "0.1.0" }\n'
        '    null     = { source = "hashicorp/null", version = "2.1.2" }\n  }\n}\n'
        f'''
resource "platform_postgres_database" "d" {{
  count  = {half}
  name   = "bench_db_${{count.index}}"
  team   = "bench"
  tier   = "small"
  labels = {{ owner = "bench" }}
}}

resource "null_resource" "n" {{
  count = {n - half}
  triggers = {{
    index = count.index
  }}
}}
''')


def refresh_tf(n):
    return lc.REQUIRED_NULL + f'''
resource "null_resource" "r" {{
  count = {n}
}}
'''


CPU = [0.0]  # CPU seconds (user + system) of finished children, accumulated by run()


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run(cmd, cwd, env, ok=(0, 2), stdout=subprocess.DEVNULL):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                       stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if r.returncode not in ok:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed (exit {r.returncode}):\n"
                           f"{r.stderr[-3000:]}")
    return dt, r


def bare(tf, work, env):
    t0, c0 = time.perf_counter(), children_cpu()
    run([tf, "plan", "-input=false", "-no-color", "-lock=false", "-detailed-exitcode",
         "-out=tfplan"], work, env)
    with open(work / "plan.json", "w") as out:
        run([tf, "show", "-json", "-no-color", "tfplan"], work, env, ok=(0,), stdout=out)
    return time.perf_counter() - t0, children_cpu() - c0


def broker_plan(broker, tf, work, env, home):
    cmd = [broker, "--terraform", tf, "--home", home, "plan", str(work),
           "--policy", REPO / "examples/policies/policy.hcl",
           "--pricebook", REPO / "examples/pricebooks/aws.hcl", "--json"]
    c0 = children_cpu()
    dt, r = run(cmd, work, env, ok=(0, 2, 3, 4))
    return (dt, children_cpu() - c0), r.returncode, own_time(Path(home))


def own_time(home):
    """(broker ms, policy ms) of the last plan, from its audit event."""
    last = (home / "audit.log").read_text().splitlines()[-1]
    durations = json.loads(last)["data"]["durations_ms"]
    return durations["broker"], durations["policy"]


def scenario(name, tf, work, env, broker, home, n):
    log(f"bench: [{name}] warm-up (init, first runs not measured) ...")
    bare(tf, work, env)
    broker_plan(broker, tf, work, env, home)
    xs_bare, xs_broker, codes = [], [], set()
    cpu_bare, cpu_broker, own = [], [], []
    for i in range(n):
        order = ("bare", "broker") if i % 2 == 0 else ("broker", "bare")
        for which in order:
            if which == "bare":
                dt, cpu = bare(tf, work, env)
                xs_bare.append(dt)
                cpu_bare.append(cpu)
            else:
                (dt, cpu), code, mine = broker_plan(broker, tf, work, env, home)
                xs_broker.append(dt)
                cpu_broker.append(cpu)
                own.append(mine)
                codes.add(code)
        log(f"bench: [{name}] {i + 1}/{n}: bare {xs_bare[-1]:.2f}s broker {xs_broker[-1]:.2f}s"
            f" (cpu {cpu_bare[-1]:.2f}s / {cpu_broker[-1]:.2f}s;"
            f" broker's own {own[-1][0]:.0f} ms, policy {own[-1][1]:.0f} ms)")
    return xs_bare, xs_broker, cpu_bare, cpu_broker, codes, own


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=5, help="repetitions (default 5)")
    ap.add_argument("--count", type=int, default=1000, help="resources (default 1000)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()

    tools = common.load_tools_env()
    provider, broker = build()
    root = Path(tempfile.mkdtemp(prefix="bench-broker-"))
    results = []
    try:
        for tf in common.terraform_bins(tools):
            version = common.tf_version(tf)
            tag = version.replace(".", "_")
            cli = mirror_config(root, tag, provider, tools["NULL_MIRROR"])
            env = common.base_env(cli)
            for name, main_tf in (("create", create_tf(args.count)),
                                  ("refresh", refresh_tf(args.count))):
                work = root / tag / name
                work.mkdir(parents=True)
                (work / "main.tf").write_text(main_tf)
                run([tf, "init", "-input=false", "-no-color"], work, env, ok=(0,))
                if name == "refresh":
                    log(f"bench: [{name}] terraform apply of {args.count} null_resource ...")
                    run([tf, "apply", "-auto-approve", "-input=false", "-no-color"], work, env,
                        ok=(0,))
                home = root / tag / f"{name}-home"
                results.append((version, name, *scenario(f"{version} {name}", tf, work, env,
                                                         broker, home, args.n)))
                shutil.rmtree(home, ignore_errors=True)
    except RuntimeError as e:
        print(f"\nbench: FAILED: {e}", flush=True)
        return 1
    finally:
        if args.keep:
            log(f"bench: kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    print(f"\nplatform-broker plan vs terraform plan -out + show -json, {args.count} resources, "
          f"n={args.n} (seconds)")
    print(f"  {'terraform / scenario':<24} {'bare':>7} {'broker':>7} {'ratio':>6}"
          f"   {'cpu bare':>8} {'broker':>7} {'ratio':>6}   {'own ms':>6} {'policy':>6}"
          f"   exit codes")
    for version, name, xs_bare, xs_broker, cpu_bare, cpu_broker, codes, own in results:
        mb, mk = statistics.median(xs_bare), statistics.median(xs_broker)
        cb, ck = statistics.median(cpu_bare), statistics.median(cpu_broker)
        ratio = mk / mb
        verdict = "MET" if ratio <= 1.05 else "NOT MET"
        own_ms = statistics.median(o[0] for o in own)
        policy_ms = statistics.median(o[1] for o in own)
        print(f"  {version + ' ' + name:<24} {mb:7.2f} {mk:7.2f} {ratio:6.3f}"
              f"   {cb:8.2f} {ck:7.2f} {ck / cb:6.3f}   {own_ms:6.0f} {policy_ms:6.0f}"
              f"   {sorted(codes)}"
              f"   wall target <= 1.05: {verdict}")
    print("  (wall: medians in seconds; cpu: user+system seconds of terraform, its providers"
          " and the broker;\n   own ms: the broker's wall time outside terraform, policy ms"
          " included, medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

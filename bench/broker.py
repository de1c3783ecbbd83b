#!/usr/bin/env python3
"""Benchmark `platform-broker plan` and `apply` against bare `terraform plan` / `apply`.

One command (Python 3 stdlib only; reuses bench/schema.py and bench/lifecycle.py helpers):

    python3 bench/broker.py            # 1000 resources, 5 repetitions, every Terraform
    python3 bench/broker.py -n 9 --count 2000
    python3 bench/broker.py --count 60 -n 1 --scenarios apply   # a quick check of one scenario

For each available Terraform (PATH, then .tools' 1.0.3) and each scenario (--scenarios,
default create,refresh,apply), the two sides run interleaved (bare, broker, broker, bare,
...) on the same working directory.

Plan scenarios (what is timed: the whole plan, terraform's and the broker's work):

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
  (from the plan audit event's durations_ms: the run's wall time minus Terraform's, and
  the policy evaluation within it), so the ratio can be read against where the time goes.

Apply scenario (what is timed: the apply alone; each side plans first, untimed):

  apply    1000 x null_resource already in the state, whose triggers hold
           `local.generation`: before every plan (bare or broker) main.tf is rewritten
           with the next `locals { generation = N }`, so every plan replaces all 1000
           and every apply does the same work (1000 deletes + 1000 creates). An apply
           consumes its plan (a broker run applies once) and changes the state, so each
           measured apply gets its own fresh plan against the current state.

  bare     terraform plan -input=false -no-color -detailed-exitcode -out=tfplan
           (untimed; must exit 2), then, timed:
           terraform apply -input=false -no-color tfplan
  broker   platform-broker plan ... --json (untimed; must exit 2, changes allowed, with
           the same policy and price book; the run id is its report's "run"), then, timed:
           platform-broker apply RUN --dir WORK --policy ... --pricebook ...
           i.e. the same terraform apply plus everything the broker adds: the identity
           and its plan event, the bindings (directory, *.tf, lock file, backend, state
           lineage/serial, catalog, policy, price book), a private copy of the plan file,
           `terraform show -json` of it again with parsing, cost and policy evaluation
           (the re-derived verdict must equal the recorded one), the consumed marker, and
           the apply.start/apply.end audit events.
           After each apply the state is read back: all 1000 must carry the new generation.

  Target: broker <= 1.10 x bare (median of each) at 1000 resources. Printed alongside:
  the median extra wall time (broker - bare) and the median `rederive_ms` of the
  `dev.platform.broker.apply.start` audit events (the show + parse + cost + policy
  re-derivation within it), so the ratio can be read against where the time goes.

Wall time is the median in seconds; CPU is user+system seconds of every child process
(terraform, its providers and the broker), median too. The targets are defined at 1000
resources: with a smaller --count the fixed per-command overhead weighs more.
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


def apply_tf(n, generation):
    """N null_resource, all replaced whenever `generation` changes (see ApplyWork)."""
    return lc.REQUIRED_NULL + f'''
locals {{
  generation = {generation}
}}

resource "null_resource" "a" {{
  count = {n}
  triggers = {{
    index      = count.index
    generation = local.generation
  }}
}}
'''


POLICY_ARGS = ["--policy", REPO / "examples/policies/policy.hcl",
               "--pricebook", REPO / "examples/pricebooks/aws.hcl"]

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
    cmd = [broker, "--terraform", tf, "--home", home, "plan", str(work), *POLICY_ARGS, "--json"]
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


class ApplyWork:
    """The apply scenario's working directory: main.tf at generation N, N bumped per plan."""

    def __init__(self, work, n):
        self.work, self.n, self.generation = work, n, 0
        self.write()

    def write(self):
        (self.work / "main.tf").write_text(apply_tf(self.n, self.generation))

    def next_generation(self):
        """Before a plan (never between a broker plan and its apply: that is refused)."""
        self.generation += 1
        self.write()

    def check_state(self, who):
        """Every instance in the state carries the current generation (the apply replaced all)."""
        state = json.loads((self.work / "terraform.tfstate").read_text())
        want = str(self.generation)
        got = sum(1 for r in state.get("resources", []) if r.get("type") == "null_resource"
                  for i in r.get("instances", [])
                  if i.get("attributes", {}).get("triggers", {}).get("generation") == want)
        if got != self.n:
            raise RuntimeError(f"{who}: after the apply {got} of {self.n} null_resource carry "
                               f"generation {want}: the apply did not replace them all")


def bare_apply(tf, aw, env):
    """Untimed `terraform plan -out=tfplan` (exit 2), then the timed apply of tfplan."""
    aw.next_generation()
    run([tf, "plan", "-input=false", "-no-color", "-detailed-exitcode", "-out=tfplan"],
        aw.work, env, ok=(2,))
    c0 = children_cpu()
    dt, _ = run([tf, "apply", "-input=false", "-no-color", "tfplan"], aw.work, env, ok=(0,))
    cpu = children_cpu() - c0
    aw.check_state("terraform apply")
    return dt, cpu


def broker_apply(broker, tf, aw, env, home):
    """Untimed `platform-broker plan` (exit 2: changes allowed), then the timed apply of its
    run; returns (wall, cpu) and the apply.start event's rederive_ms."""
    aw.next_generation()
    _, r = run([broker, "--terraform", tf, "--home", home, "plan", str(aw.work), *POLICY_ARGS,
                "--json"], aw.work, env, ok=(0, 1, 2, 3, 4), stdout=subprocess.PIPE)
    if r.returncode != 2:
        raise RuntimeError(f"platform-broker plan exited {r.returncode}, not 2 (changes "
                           f"allowed):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    run_id = json.loads(r.stdout)["run"]
    c0 = children_cpu()
    dt, _ = run([broker, "--terraform", tf, "--home", home, "apply", run_id,
                 "--dir", str(aw.work), *POLICY_ARGS], aw.work, env, ok=(0,))
    cpu = children_cpu() - c0
    aw.check_state(f"platform-broker apply {run_id}")
    return dt, cpu, rederive_ms(Path(home), run_id)


def rederive_ms(home, run_id):
    """rederive_ms of the run's dev.platform.broker.apply.start audit event."""
    for line in reversed((home / "audit.log").read_text().splitlines()):
        event = json.loads(line)
        if (event.get("type") == "dev.platform.broker.apply.start"
                and event["data"].get("run") == run_id):
            return event["data"]["rederive_ms"]
    raise RuntimeError(f"no dev.platform.broker.apply.start event for run {run_id} in "
                       f"{home / 'audit.log'}")


def apply_scenario(name, tf, aw, env, broker, home, n):
    log(f"bench: [{name}] warm-up (one plan + apply each, not measured) ...")
    bare_apply(tf, aw, env)
    broker_apply(broker, tf, aw, env, home)
    xs_bare, xs_broker, cpu_bare, cpu_broker, rederive = [], [], [], [], []
    for i in range(n):
        order = ("bare", "broker") if i % 2 == 0 else ("broker", "bare")
        for which in order:
            if which == "bare":
                dt, cpu = bare_apply(tf, aw, env)
                xs_bare.append(dt)
                cpu_bare.append(cpu)
            else:
                dt, cpu, ms = broker_apply(broker, tf, aw, env, home)
                xs_broker.append(dt)
                cpu_broker.append(cpu)
                rederive.append(ms)
        log(f"bench: [{name}] {i + 1}/{n}: apply bare {xs_bare[-1]:.2f}s broker "
            f"{xs_broker[-1]:.2f}s (cpu {cpu_bare[-1]:.2f}s / {cpu_broker[-1]:.2f}s;"
            f" re-derivation {rederive[-1]:.0f} ms)")
    return xs_bare, xs_broker, cpu_bare, cpu_broker, rederive


SCENARIOS = ("create", "refresh", "apply")
PLAN_TARGET, APPLY_TARGET = 1.05, 1.10


def scenarios_arg(text):
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown) or '(none)'}; choose from "
            f"{','.join(SCENARIOS)}")
    return [s for s in SCENARIOS if s in names]


def verdict(ratio, target):
    return "MET" if ratio <= target else "NOT MET"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=5, help="repetitions (default 5)")
    ap.add_argument("--count", type=int, default=1000, help="resources (default 1000)")
    ap.add_argument("--scenarios", type=scenarios_arg, default=list(SCENARIOS),
                    metavar="LIST", help="comma-separated, of "
                    f"{','.join(SCENARIOS)} (default: all)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()

    tools = common.load_tools_env()
    provider, broker = build()
    root = Path(tempfile.mkdtemp(prefix="bench-broker-"))
    results, applied = [], []
    try:
        for tf in common.terraform_bins(tools):
            version = common.tf_version(tf)
            tag = version.replace(".", "_")
            cli = mirror_config(root, tag, provider, tools["NULL_MIRROR"])
            env = common.base_env(cli)
            for name in args.scenarios:
                work = root / tag / name
                work.mkdir(parents=True)
                home = root / tag / f"{name}-home"
                if name == "apply":
                    aw = ApplyWork(work, args.count)
                    run([tf, "init", "-input=false", "-no-color"], work, env, ok=(0,))
                    log(f"bench: [{name}] terraform apply of {args.count} null_resource ...")
                    run([tf, "apply", "-auto-approve", "-input=false", "-no-color"], work, env,
                        ok=(0,))
                    applied.append((version, *apply_scenario(f"{version} {name}", tf, aw, env,
                                                             broker, home, args.n)))
                    shutil.rmtree(home, ignore_errors=True)
                    continue
                main_tf = create_tf(args.count) if name == "create" else refresh_tf(args.count)
                (work / "main.tf").write_text(main_tf)
                run([tf, "init", "-input=false", "-no-color"], work, env, ok=(0,))
                if name == "refresh":
                    log(f"bench: [{name}] terraform apply of {args.count} null_resource ...")
                    run([tf, "apply", "-auto-approve", "-input=false", "-no-color"], work, env,
                        ok=(0,))
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

    summary = {}  # version -> [(label, ratio, target)]
    if results:
        print(f"\nplatform-broker plan vs terraform plan -out + show -json, {args.count} "
              f"resources, n={args.n} (seconds)")
        print(f"  {'terraform / scenario':<24} {'bare':>7} {'broker':>7} {'ratio':>6}"
              f"   {'cpu bare':>8} {'broker':>7} {'ratio':>6}   {'own ms':>6} {'policy':>6}"
              f"   exit codes")
        for version, name, xs_bare, xs_broker, cpu_bare, cpu_broker, codes, own in results:
            mb, mk = statistics.median(xs_bare), statistics.median(xs_broker)
            cb, ck = statistics.median(cpu_bare), statistics.median(cpu_broker)
            ratio = mk / mb
            own_ms = statistics.median(o[0] for o in own)
            policy_ms = statistics.median(o[1] for o in own)
            print(f"  {version + ' ' + name:<24} {mb:7.2f} {mk:7.2f} {ratio:6.3f}"
                  f"   {cb:8.2f} {ck:7.2f} {ck / cb:6.3f}   {own_ms:6.0f} {policy_ms:6.0f}"
                  f"   {sorted(codes)}"
                  f"   wall target <= {PLAN_TARGET:.2f}: {verdict(ratio, PLAN_TARGET)}")
            summary.setdefault(version, []).append((f"plan {name}", ratio, PLAN_TARGET))
        print("  (wall: medians in seconds; cpu: user+system seconds of terraform, its providers"
              " and the broker;\n   own ms: the broker's wall time outside terraform, policy ms"
              " included, medians)")
    if applied:
        print(f"\nplatform-broker apply RUN vs terraform apply PLANFILE, {args.count} "
              f"null_resource replaced per apply, n={args.n} (seconds)")
        print(f"  {'terraform / scenario':<24} {'bare':>7} {'broker':>7} {'ratio':>6}"
              f"   {'cpu bare':>8} {'broker':>7} {'ratio':>6}   {'+ms':>6} {'rederive':>8}")
        for version, xs_bare, xs_broker, cpu_bare, cpu_broker, rederive in applied:
            mb, mk = statistics.median(xs_bare), statistics.median(xs_broker)
            cb, ck = statistics.median(cpu_bare), statistics.median(cpu_broker)
            ratio = mk / mb
            print(f"  {version + ' apply':<24} {mb:7.2f} {mk:7.2f} {ratio:6.3f}"
                  f"   {cb:8.2f} {ck:7.2f} {ck / cb:6.3f}   {(mk - mb) * 1000:6.0f}"
                  f" {statistics.median(rederive):8.0f}"
                  f"   wall target <= {APPLY_TARGET:.2f}: {verdict(ratio, APPLY_TARGET)}")
            summary.setdefault(version, []).append(("apply", ratio, APPLY_TARGET))
        print("  (wall: medians in seconds of the apply alone, its plan untimed; cpu: user+system"
              " seconds of terraform,\n   its providers and the broker; +ms: broker - bare wall,"
              " medians; rederive: median rederive_ms\n   of the apply.start audit events, the"
              " show + parse + cost + policy within the broker's apply)")
    print(f"\nsummary (broker / bare, wall medians; targets at 1000 resources, this run "
          f"{args.count}, n={args.n}):")
    for version, rows in summary.items():
        print(f"  TF {version}: " + "; ".join(
            f"{label} {ratio:.3f} (<= {target:.2f} {verdict(ratio, target)})"
            for label, ratio, target in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

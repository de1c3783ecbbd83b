#!/usr/bin/env python3
"""Benchmark the resource lifecycle (plan / apply / refresh / destroy) on real PostgreSQL.

One command per comparison (Python 3 stdlib only; reuses bench/schema.py's helpers):

    python3 bench/lifecycle.py cheap              # 1000 x bench_role vs 1000 x null_resource
    python3 bench/lifecycle.py cheap --plan-only  # plan (no state) only, more repetitions
    python3 bench/lifecycle.py databases          # 200 x platform_postgres_database vs psql

Each starts a throwaway PostgreSQL (scripts/pg) in a temp dir, builds the release provider
(or takes --provider), and runs, for each available Terraform (PATH, then .tools' 1.0.3),
-n repetitions (default 3) interleaved phase by phase (ours, other, other, ours, ...):

  cheap      ours: `resource "platform_bench_role" "r" { count = N }` from a generated bench
             catalog (offering bench_role = one postgres.role primitive, name
             "bench_${input.name}", login = false: one real CREATE ROLE per instance);
             null: `resource "null_resource" "r" { count = N }`, hashicorp/null 2.1.2;
             null-shaped: the same with `triggers` holding the attributes DESIGN requires
             of every platform resource (team, tier, offering_version, status,
             monthly_cost, labels, name): Terraform's own cost of an object our shape.
             Phases: plan (no state), apply -auto-approve (fresh state), plan (with state:
             refresh), destroy -auto-approve. Target: ours <= 0.9 x null for plan and apply.
  databases  ours: `resource "platform_postgres_database" "d" { count = N }` (default catalog;
             each = CREATE ROLE ... LOGIN PASSWORD ... CONNECTION LIMIT, COMMENT,
             CREATE DATABASE ... OWNER ... CONNECTION LIMIT ... TEMPLATE template0, COMMENT, read-back);
             psql: the same SQL as one script in one psql process, as one psql process per
             database (sequential), and the DROP script. Target: ours apply <= 1.3 x psql script.

Then, unless --no-profile, WHERE THE TIME GOES (one run each, so noisier):
  - CPU split of apply and destroy: Terraform / provider plugin / PostgreSQL server CPU
    seconds (plugins run under a small rusage wrapper via dev_overrides; PostgreSQL CPU from
    the postmaster's /proc stat, exited backends included), at -parallelism=10 and 30;
  - a TF_LOG=trace apply and destroy of ours (and of null in `cheap`): time inside
    ApplyResourceChange (Terraform's "applying the planned ... change" -> first
    writeResourceInstanceState), Terraform's own work after each RPC (state object write,
    state snapshot persist -> "visit complete"), and how many state snapshots hit the disk;
  - databases: the PostgreSQL statements alone (CREATE DATABASE copies template1 or template0, WAL_LOG and
    FILE_COPY strategies; CREATE ROLE; DROP DATABASE), per object.

Noise between runs is large on a shared 2-core machine: compare the ratios, which are
measured side by side, rather than absolute numbers across runs.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import schema as common  # noqa: E402  (bench/schema.py: setup, build, Case, base_env)

REPO = common.REPO
log, die = common.log, common.die

BENCH_CATALOG = '''catalog {
  provider_prefix = "platform"
}

offering "bench_role" {
  title       = "Bench role"
  description = "One NOLOGIN PostgreSQL role: the cheapest real primitive."
  owner {
    team = "bench"
  }
  version "1.0.0" {
    status = "current"
    input "name" {
      type      = string
      pattern   = "^[a-z][a-z0-9_]{2,40}$"
      on_change = "replace"
    }
    tier "free" {
      price {
        amount = 0
        unit   = "month"
      }
    }
    compose {
      primitive "role" {
        driver = "postgres.role"
        inputs = {
          name  = "bench_${input.name}"
          login = false
        }
      }
    }
  }
}
'''

REQUIRED_PLATFORM = ('terraform {\n  required_providers {\n'
                     '    platform = { source = "platform/platform" }\n  }\n}\n')
REQUIRED_NULL = ('terraform {\n  required_providers {\n'
                 '    null = { source = "hashicorp/null", version = "2.1.2" }\n  }\n}\n')


def ours_cheap_tf(n):
    return REQUIRED_PLATFORM + f'''
resource "platform_bench_role" "r" {{
  count = {n}
  name  = "role_${{count.index}}"
  team  = "bench"
}}
'''


def null_tf(n, required=True):
    return (REQUIRED_NULL if required else "") + f'''
resource "null_resource" "r" {{
  count = {n}
}}
'''


def null_shaped_tf(n):
    """null_resource carrying, in `triggers`, the attributes DESIGN requires of every platform
    resource with bench_role's values: what Terraform itself spends on an object of our shape
    (no provider work, no private data)."""
    return REQUIRED_NULL + f'''
resource "null_resource" "r" {{
  count = {n}
  triggers = {{
    name             = "role_${{count.index}}"
    team             = "bench"
    tier             = "free"
    offering_version = "1.0.0"
    status           = "current"
    monthly_cost     = "0"
    labels           = ""
  }}
}}
'''


def ours_db_tf(n):
    return REQUIRED_PLATFORM + f'''
resource "platform_postgres_database" "d" {{
  count = {n}
  name  = "bench_db_${{count.index}}"
  team  = "bench"
  tier  = "small"
}}
'''


# --------------------------------------------------------------------------- PostgreSQL


class Pg:
    def __init__(self, root):
        self.dir = root / "pg"
        r = subprocess.run(["bash", str(REPO / "scripts" / "pg"), "start", str(self.dir)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            die(f"scripts/pg start failed:\n{r.stdout}{r.stderr}")
        self.env = {}
        for line in (self.dir / "env").read_text().splitlines():
            if line.startswith("export "):
                k, _, v = line[len("export "):].partition("=")
                self.env[k] = v
        self.postmaster = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        self.tick = os.sysconf("SC_CLK_TCK")

    def stop(self):
        subprocess.run(["bash", str(REPO / "scripts" / "pg"), "stop", str(self.dir)],
                       capture_output=True)

    def psql(self, sql=None, file=None, check=True):
        env = dict(os.environ, **self.env)
        args = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        args += ["-f", str(file)] if file else ["-c", sql]
        t0 = time.perf_counter()
        r = subprocess.run(args, env=env, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        if check and r.returncode != 0:
            raise RuntimeError(f"psql failed (exit {r.returncode}): {r.stderr.strip()}")
        return dt, r.stdout.strip()

    def count(self, what):
        q = {"roles": "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'bench\\_%'",
             "databases": "SELECT count(*) FROM pg_database WHERE datname LIKE 'bench\\_%'"}[what]
        return int(self.psql(q)[1])

    def cpu(self):
        """CPU seconds of the server so far: postmaster + exited children + live children."""
        def stat(pid):
            try:
                text = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                return None
            fields = text[text.rindex(")") + 2:].split()
            return fields  # fields[0] = state; utime = fields[11], stime = [12], cu/cs = [13]/[14]
        f = stat(self.postmaster)
        total = sum(int(x) for x in f[11:15])
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) != self.postmaster:
                s = stat(d)
                if s and int(s[1]) == self.postmaster:
                    total += int(s[11]) + int(s[12])
        return total / self.tick


# --------------------------------------------------------------------------- cases


def cli_config(path, overrides=None, null_mirror=None):
    text = 'disable_checkpoint = true\nprovider_installation {\n'
    if overrides:
        text += '  dev_overrides {\n'
        for src, d in overrides.items():
            text += f'    "{src}" = "{d}"\n'
        text += '  }\n'
    if null_mirror:
        text += (f'  filesystem_mirror {{\n    path    = "{null_mirror}"\n'
                 '    include = ["registry.terraform.io/hashicorp/null"]\n  }\n')
    if null_mirror:  # else `direct` would be asked about null too (no network here)
        text += '  direct {\n    exclude = ["registry.terraform.io/hashicorp/null"]\n  }\n}\n'
    else:
        text += '  direct {}\n}\n'
    path.write_text(text)
    return path


def make_case(name, work, cli, main_tf, env_extra):
    work.mkdir(parents=True)
    (work / "main.tf").write_text(main_tf)
    return common.Case(name, work, cli, env_extra)


def reset_state(case):
    for p in case.workdir.glob("terraform.tfstate*"):
        p.unlink()


RUSAGE_WRAPPER = '''#!/usr/bin/env python3
import os, subprocess, sys
p = subprocess.Popen([{real!r}] + sys.argv[1:])
_, status, ru = os.wait4(p.pid, 0)
with open(os.environ["BENCH_RUSAGE_FILE"], "a") as f:
    f.write(f"{{ru.ru_utime}} {{ru.ru_stime}}\\n")
sys.exit(os.waitstatus_to_exitcode(status) & 0xff)
'''


def wrapper_dir(root, name, real):
    d = root / f"wrap-{name}"
    d.mkdir(parents=True, exist_ok=True)
    w = d / name
    w.write_text(RUSAGE_WRAPPER.format(real=str(real)))
    w.chmod(0o755)
    return d


def run_rusage(case, binary, args, pg=None):
    """Wall seconds, Terraform CPU, plugin CPU, PostgreSQL CPU of one command."""
    ru_file = case.workdir / "rusage.txt"
    ru_file.write_text("")
    env = dict(case.env, BENCH_RUSAGE_FILE=str(ru_file))
    pg0 = pg.cpu() if pg else 0.0
    with open(case.workdir / "out.log", "w") as out:
        t0 = time.perf_counter()
        p = subprocess.Popen([binary, *args], cwd=case.workdir, env=env,
                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"[{case.name}] {' '.join(args)} failed:\n"
                           + (case.workdir / "out.log").read_text()[-3000:])
    plugin = sum(float(a) + float(b) for a, b in
                 (line.split() for line in ru_file.read_text().splitlines() if line.strip()))
    time.sleep(0.3)  # let backends exit so their CPU lands in the postmaster's cutime
    pgc = (pg.cpu() - pg0) if pg else 0.0
    total = ru.ru_utime + ru.ru_stime  # terraform + its waited-for children (the plugins)
    return wall, total - plugin, plugin, pgc


# --------------------------------------------------------------------------- trace parsing

TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z? ")


def parse_ts(line):
    m = TS.match(line)
    if not m:
        return None
    return datetime.fromisoformat(m.group(1)).timestamp()


def analyse_trace(path):
    """Per-resource RPC time and post-RPC Terraform time from a TF_LOG=trace apply log."""
    start, rpc_end, done = {}, {}, {}
    snapshots = declined = 0
    first = last = None
    re_apply = re.compile(r"\] (\S+): applying the planned (\w+) change")
    re_write = re.compile(r"writeResourceInstanceState to workingState for (\S+)")
    re_done = re.compile(r'vertex "([^"]+?)(?: \(destroy\))?": visit complete')
    with open(path, errors="replace") as f:
        for line in f:
            t = parse_ts(line)
            if t is None:
                continue
            first = first if first is not None else t
            last = t
            if "applying the planned" in line:
                m = re_apply.search(line)
                if m:
                    start.setdefault(m.group(1), t)
            elif "writeResourceInstanceState to workingState" in line:
                m = re_write.search(line)
                if m and m.group(1) in start:
                    rpc_end.setdefault(m.group(1), t)
            elif "visit complete" in line:
                m = re_done.search(line)
                if m and m.group(1) in rpc_end:
                    done.setdefault(m.group(1), t)
            elif "statemgr.Filesystem: writing snapshot at" in line:
                snapshots += 1
            elif "declined to persist a state snapshot" in line:
                declined += 1
    rpcs = [rpc_end[a] - start[a] for a in rpc_end]
    post = [done[a] - rpc_end[a] for a in done]
    # Union of the RPC intervals: time with at least one ApplyResourceChange in flight.
    iv = sorted((start[a], rpc_end[a]) for a in rpc_end)
    union, cur_s, cur_e = 0.0, None, None
    for s, e in iv:
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                union += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        union += cur_e - cur_s
    span = (max(done.values()) - min(start.values())) if done and start else 0.0
    return {
        "resources": len(rpcs),
        "rpc_sum": sum(rpcs), "rpc_median": statistics.median(rpcs) if rpcs else 0.0,
        "rpc_union": union, "post_sum": sum(post),
        "post_median": statistics.median(post) if post else 0.0,
        "span": span, "log_wall": (last - first) if first else 0.0,
        "snapshots": snapshots - declined, "declined": declined,
    }


def trace_run(case, binary, args, label):
    path = case.workdir / f"trace-{label}.log"
    env = dict(case.env, TF_LOG="trace", TF_LOG_PATH=str(path))
    t0 = time.perf_counter()
    r = subprocess.run([binary, *args], cwd=case.workdir, env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"[{case.name}] traced {' '.join(args)} failed:\n{r.stdout[-3000:]}"
                           f"\n{r.stderr[-3000:]}")
    a = analyse_trace(path)
    size = path.stat().st_size
    path.unlink()
    a["wall"] = wall
    a["log_mb"] = size / 1e6
    return a


def print_trace(label, a):
    print(f"  {label:<30} wall {a['wall']:6.2f}s  resources {a['resources']:4d}  "
          f"RPC sum {a['rpc_sum']:6.2f}s (median {a['rpc_median'] * 1000:5.1f} ms, "
          f"in flight {a['rpc_union']:5.2f}s)  after-RPC sum {a['post_sum']:6.2f}s "
          f"(median {a['post_median'] * 1000:5.1f} ms)  state snapshots written "
          f"{a['snapshots']} (declined {a['declined']})  log {a['log_mb']:.0f} MB")


# --------------------------------------------------------------------------- reporting


def fmt_s(x):
    return f"{x:7.2f}"


def stats_row(label, xs):
    return (f"  {label:<42} {fmt_s(statistics.median(xs))} {fmt_s(min(xs))} "
            f"{fmt_s(max(xs))}   n={len(xs)}")


HEADER = f"  {'':<42} {'median':>7} {'min':>7} {'max':>7}   (seconds)"


def ratio_line(label, num, den, target=None):
    r = statistics.median(num) / statistics.median(den)
    verdict = ""
    if target is not None:
        verdict = f"   target <= {target:.2f}: {'MET' if r <= target else 'NOT MET'}"
    print(f"  {label:<42} {r:5.2f}{verdict}")
    return r


def tf_args(phase, parallelism):
    par = [f"-parallelism={parallelism}"]
    return {
        "plan": ["plan", "-input=false", "-no-color", "-lock=false", *par],
        "apply": ["apply", "-auto-approve", "-input=false", "-no-color", *par],
        "refresh-plan": ["plan", "-input=false", "-no-color", "-lock=false", *par],
        "destroy": ["destroy", "-auto-approve", "-input=false", "-no-color", *par],
    }[phase]


# --------------------------------------------------------------------------- cheap


def bench_cheap(args, tools, provider, root, pg):
    catalog = root / "catalog"
    catalog.mkdir()
    (catalog / "bench.hcl").write_text(BENCH_CATALOG)
    null_mirror = Path(tools["NULL_MIRROR"])
    null_bin = null_mirror / common.NULL_REL
    n = args.count
    ours_env = dict(pg.env, PLATFORM_CATALOG=str(catalog))
    phases = ["plan"] if args.plan_only else ["plan", "apply", "refresh-plan", "destroy"]
    reps = args.n if args.n else (7 if args.plan_only else 3)
    print(f"bench/lifecycle.py cheap: {n} x platform_bench_role (one CREATE ROLE each) vs "
          f"{n} x null_resource, n={reps}, interleaved, -parallelism={args.parallelism}")
    print(f"  provider: {provider}\n  null:     {null_bin}\n  PostgreSQL: {pg.dir}")
    summary = []
    for bi, binary in enumerate(common.terraform_bins(tools)):
        version = common.tf_version(binary)
        base = root / f"tf{bi}"
        base.mkdir()
        ours_cli = cli_config(base / "ours.tfrc", {"platform/platform": provider.parent})
        null_cli = cli_config(base / "null.tfrc", None, null_mirror)
        ours = make_case("ours", base / "ours", ours_cli, ours_cheap_tf(n), ours_env)
        null = make_case("null", base / "null", null_cli, null_tf(n), {})
        shaped = make_case("null-shaped", base / "null-shaped", null_cli, null_shaped_tf(n), {})
        cases = [ours, null, shaped]
        for c in (null, shaped):
            c.run(binary, ["init", "-no-color", "-input=false"])
        # warm-up: a tiny plan each (page cache, provider schema).
        for c in cases:
            c.run(binary, ["validate", "-no-color"])
        times = {(c.name, p): [] for c in cases for p in phases}
        for i in range(reps):
            order = cases[i % 3:] + cases[:i % 3]
            for p in phases:
                for c in order:
                    if p == "plan":
                        reset_state(c)
                    dt, _ = c.run(binary, tf_args(p, args.parallelism))
                    times[(c.name, p)].append(dt)
            if "destroy" in phases:
                left = pg.count("roles")
                if left:
                    die(f"{left} bench roles left after destroy")
            log(f"bench: TF {version} rep {i + 1}/{reps}: " + ", ".join(
                f"{c}/{p} {times[(c, p)][-1]:.1f}s" for (c, p) in times))
        print(f"\nTerraform {version} ({binary}), {n} instances")
        print(HEADER)
        for p in phases:
            for c in ("ours", "null", "null-shaped"):
                print(stats_row(f"{c}: {p}", times[(c, p)]))
        print("  ratio ours/null (medians):")
        for p in phases:
            target = 0.9 if p in ("plan", "apply") else None
            r = ratio_line(p, times[("ours", p)], times[("null", p)], target)
            summary.append((version, p, r))
        print("  ratio null-shaped/null (Terraform's own cost of our attributes, medians):")
        for p in phases:
            r = ratio_line(p, times[("null-shaped", p)], times[("null", p)])
            summary.append((version, f"{p} null-shaped/null", r))
        if not args.no_profile and not args.plan_only:
            profile_cheap(args, binary, version, base, provider, null_bin, ours_env, pg, n)
    print("\nsummary (medians; ours/null unless named): " + "; ".join(
        f"TF {v} {p} {r:.2f}" for v, p, r in summary))


def profile_cheap(args, binary, version, base, provider, null_bin, ours_env, pg, n):
    print(f"\n  where the time goes, Terraform {version} (one run each)")
    wrap_ours = wrapper_dir(base, "terraform-provider-platform", provider)
    wrap_null = wrapper_dir(base, "terraform-provider-null", null_bin)
    cli = cli_config(base / "prof.tfrc", {"platform/platform": wrap_ours,
                                          "hashicorp/null": wrap_null})
    ours = make_case("ours", base / "prof-ours", cli, ours_cheap_tf(n), ours_env)
    null = make_case("null", base / "prof-null", cli, null_tf(n), {})
    print(f"  {'CPU split':<30} {'wall':>7} {'terraform':>10} {'plugin':>8} {'postgres':>9}"
          "   (seconds; CPU = user+sys)")
    for par in (10, 30):
        for phase in ("apply", "destroy"):
            for c in (ours, null):
                wall, tfc, plc, pgc = run_rusage(c, binary, tf_args(phase, par),
                                                 pg if c is ours else None)
                pgs = f"{pgc:9.2f}" if c is ours else f"{'-':>9}"
                print(f"  {c.name + ' ' + phase + f' -parallelism={par}':<30} {wall:7.2f} "
                      f"{tfc:10.2f} {plc:8.2f} {pgs}")
    for c in (ours, null):
        a = trace_run(c, binary, tf_args("apply", 10), "apply")
        print_trace(f"{c.name} apply (TF_LOG=trace)", a)
        a = trace_run(c, binary, tf_args("destroy", 10), "destroy")
        print_trace(f"{c.name} destroy (TF_LOG=trace)", a)
    if pg.count("roles"):
        die("bench roles left after the profile runs")


# --------------------------------------------------------------------------- databases

PASSWORD = "Bench-password-0123456789abcdef"


def db_sql(i):
    d, r = f"bench_db_{i}", f"bench_db_{i}_owner"
    return (f"CREATE ROLE {r} WITH LOGIN PASSWORD '{PASSWORD}' CONNECTION LIMIT 20;\n"
            f"COMMENT ON ROLE {r} IS 'managed-by=bench resource={d} primitive=owner';\n"
            f"CREATE DATABASE {d} OWNER {r} ENCODING 'UTF8' CONNECTION LIMIT 50 TEMPLATE template0;\n"
            f"COMMENT ON DATABASE {d} IS 'managed-by=bench resource={d} primitive=db';\n")


def drop_sql(i):
    return f"DROP DATABASE bench_db_{i};\nDROP ROLE bench_db_{i}_owner;\n"


def psql_script(pg, path, n, make):
    path.write_text("".join(make(i) for i in range(n)))
    return pg.psql(file=path)[0]


def psql_per_object(pg, d, n, make):
    t0 = time.perf_counter()
    for i in range(n):
        f = d / f"obj-{i}.sql"
        f.write_text(make(i))
        pg.psql(file=f)
    return time.perf_counter() - t0


def bench_databases(args, tools, provider, root, pg):
    n = args.count
    reps = args.n or 3
    sqldir = root / "sql"
    sqldir.mkdir()
    print(f"bench/lifecycle.py databases: {n} x platform_postgres_database vs psql, n={reps}, "
          f"interleaved, -parallelism={args.parallelism}")
    print(f"  provider: {provider}\n  PostgreSQL: {pg.dir} "
          f"({pg.psql('SHOW server_version')[1]}, fsync=off)")

    def clean():
        if pg.count("databases") or pg.count("roles"):
            psql_script(pg, sqldir / "drop-if.sql", n, lambda i: (
                f"DROP DATABASE IF EXISTS bench_db_{i};\n"
                f"DROP ROLE IF EXISTS bench_db_{i}_owner;\n"))

    summary = []
    psql_times = {k: [] for k in ("psql: one script (create)", "psql: one process per database",
                                  "psql: drop script")}
    for bi, binary in enumerate(common.terraform_bins(tools)):
        version = common.tf_version(binary)
        base = root / f"tf{bi}"
        base.mkdir()
        cli = cli_config(base / "ours.tfrc", {"platform/platform": provider.parent})
        ours = make_case("ours", base / "ours", cli, ours_db_tf(n), dict(pg.env))
        ours.run(binary, ["validate", "-no-color"])
        phases = ["plan", "apply", "refresh-plan", "destroy"]
        times = {p: [] for p in phases}
        ptimes = {k: [] for k in psql_times}
        for i in range(reps):
            ours_first = i % 2 == 0
            # apply / refresh / destroy of ours, then the psql variants (order alternates).
            def run_ours():
                reset_state(ours)
                for p in phases:
                    dt, _ = ours.run(binary, tf_args(p, args.parallelism))
                    times[p].append(dt)
                    if p == "apply":
                        got = pg.count("databases")
                        if got != n:
                            die(f"apply made {got} databases, not {n}")
                if pg.count("databases") or pg.count("roles"):
                    die("bench databases/roles left after terraform destroy")

            def run_psql():
                ptimes["psql: one script (create)"].append(
                    psql_script(pg, sqldir / "create.sql", n, db_sql))
                ptimes["psql: drop script"].append(psql_script(pg, sqldir / "drop.sql", n, drop_sql))
                ptimes["psql: one process per database"].append(
                    psql_per_object(pg, sqldir, n, db_sql))
                psql_script(pg, sqldir / "drop.sql", n, drop_sql)

            for f in ((run_ours, run_psql) if ours_first else (run_psql, run_ours)):
                try:
                    f()
                except RuntimeError:
                    clean()
                    raise
            log(f"bench: TF {version} rep {i + 1}/{reps}: " + ", ".join(
                f"{p} {times[p][-1]:.1f}s" for p in phases) + ", " + ", ".join(
                f"{k} {v[-1]:.1f}s" for k, v in ptimes.items()))
        for k in psql_times:
            psql_times[k] += ptimes[k]
        print(f"\nTerraform {version} ({binary}), {n} databases")
        print(HEADER)
        for p in phases:
            print(stats_row(f"ours: {p}", times[p]))
        for k, v in ptimes.items():
            print(stats_row(k, v))
        print("  ratios (medians):")
        r = ratio_line("ours apply / psql one script", times["apply"],
                       ptimes["psql: one script (create)"], 1.3)
        summary.append((version, "apply/psql-script", r))
        r2 = ratio_line("ours apply / psql process per database", times["apply"],
                        ptimes["psql: one process per database"])
        summary.append((version, "apply/psql-per-db", r2))
        r3 = ratio_line("ours destroy / psql drop script", times["destroy"],
                        ptimes["psql: drop script"])
        summary.append((version, "destroy/psql-drop", r3))
        if not args.no_profile:
            profile_databases(args, binary, version, base, provider, pg, n)
    if not args.no_profile:
        profile_sql(pg, sqldir, n)
    print("\nsummary (medians): " + "; ".join(f"TF {v} {k} {r:.2f}" for v, k, r in summary))


def profile_databases(args, binary, version, base, provider, pg, n):
    print(f"\n  where the time goes, Terraform {version} (one run each)")
    wrap = wrapper_dir(base, "terraform-provider-platform", provider)
    cli = cli_config(base / "prof.tfrc", {"platform/platform": wrap})
    ours = make_case("ours", base / "prof-ours", cli, ours_db_tf(n), dict(pg.env))
    print(f"  {'CPU split':<30} {'wall':>7} {'terraform':>10} {'plugin':>8} {'postgres':>9}"
          "   (seconds; CPU = user+sys)")
    for par in (10, 30):
        for phase in ("apply", "destroy"):
            wall, tfc, plc, pgc = run_rusage(ours, binary, tf_args(phase, par), pg)
            print(f"  {'ours ' + phase + f' -parallelism={par}':<30} {wall:7.2f} "
                  f"{tfc:10.2f} {plc:8.2f} {pgc:9.2f}")
    a = trace_run(ours, binary, tf_args("apply", 10), "apply")
    print_trace("ours apply (TF_LOG=trace)", a)
    a = trace_run(ours, binary, tf_args("destroy", 10), "destroy")
    print_trace("ours destroy (TF_LOG=trace)", a)


def profile_sql(pg, sqldir, n):
    print(f"\nPostgreSQL alone ({n} objects, one psql script each; per object in ms)")
    rows = [
        ("CREATE DATABASE (WAL_LOG, PG15 default)",
         lambda i: f"CREATE DATABASE bench_db_{i};\n"),
        ("DROP DATABASE", lambda i: f"DROP DATABASE bench_db_{i};\n"),
        ("CREATE DATABASE TEMPLATE template0 (the driver's)",
         lambda i: f"CREATE DATABASE bench_db_{i} TEMPLATE template0;\n"),
        ("DROP DATABASE (after template0)", lambda i: f"DROP DATABASE bench_db_{i};\n"),
        ("CREATE DATABASE STRATEGY FILE_COPY",
         lambda i: f"CREATE DATABASE bench_db_{i} STRATEGY FILE_COPY;\n"),
        ("DROP DATABASE (after FILE_COPY)", lambda i: f"DROP DATABASE bench_db_{i};\n"),
        ("CREATE ROLE ... LOGIN PASSWORD (server hashes)",
         lambda i: f"CREATE ROLE bench_db_{i}_owner LOGIN PASSWORD '{PASSWORD}';\n"),
        ("DROP ROLE", lambda i: f"DROP ROLE bench_db_{i}_owner;\n"),
        ("CREATE ROLE NOLOGIN (bench_role's work)",
         lambda i: f"CREATE ROLE bench_role_{i} NOLOGIN;\n"),
        ("DROP ROLE (NOLOGIN)", lambda i: f"DROP ROLE bench_role_{i};\n"),
    ]
    for label, make in rows:
        cpu0 = pg.cpu()
        dt = psql_script(pg, sqldir / "alone.sql", n, make)
        time.sleep(0.3)
        cpu = pg.cpu() - cpu0
        print(f"  {label:<48} {dt:6.2f}s total  {dt / n * 1000:6.1f} ms/object  "
              f"(server CPU {cpu:5.2f}s)")


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["cheap", "databases"])
    ap.add_argument("-n", type=int, default=0,
                    help="repetitions (default 3; 7 with cheap --plan-only)")
    ap.add_argument("--count", type=int, help="instances (default 1000 cheap, 200 databases)")
    ap.add_argument("--plan-only", action="store_true", help="cheap: measure plan (no state) only")
    ap.add_argument("--parallelism", type=int, default=10, help="terraform -parallelism (10)")
    ap.add_argument("--no-profile", action="store_true", help="skip 'where the time goes'")
    ap.add_argument("--provider", type=Path, help="provider binary (default: cargo build)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    if args.count is None:
        args.count = 1000 if args.what == "cheap" else 200
    if not shutil.which("psql"):
        die("psql not found")

    tools = common.load_tools_env()
    provider = args.provider.resolve() if args.provider else common.build_provider()
    root = Path(tempfile.mkdtemp(prefix=f"bench-{args.what}-"))
    root.chmod(0o755)  # scripts/pg runs the server as the postgres OS user
    pg = Pg(root)
    try:
        if args.what == "cheap":
            bench_cheap(args, tools, provider, root, pg)
        else:
            bench_databases(args, tools, provider, root, pg)
        return 0
    except RuntimeError as e:
        # Terraform's output holds the whole plan: show the command, then its errors.
        text = str(e)
        lines = text.splitlines()
        errors = [i for i, line in enumerate(lines) if line.startswith("Error:")]
        if errors:
            text = "\n".join(lines[:1] + [f"  ({len(errors)} errors; the first and the last:)"]
                             + lines[errors[0]:errors[0] + 10] + ["  ..."]
                             + lines[errors[-1]:errors[-1] + 10])
        print(f"\nbench: FAILED: {text}", flush=True)
        return 1
    finally:
        pg.stop()
        if args.keep:
            log(f"bench: kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

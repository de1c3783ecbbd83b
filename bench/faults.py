#!/usr/bin/env python3
"""Fault injection: kill -9 terraform, the provider or PostgreSQL in the middle of an apply.

    python3 bench/faults.py                 # 21 trials: 7 each of terraform, provider, postgres
    python3 bench/faults.py -n 30 --target provider --resources 50 --tf /usr/local/bin/terraform

Each trial, in a fresh working directory against a throwaway PostgreSQL (scripts/pg), applies
N `platform_postgres_database` resources (default 50; each a login role and a database) with
the release provider, and at a random instant of its provisioning (uniform over the first 80%
of the time a clean apply takes from its first object to its exit, counted from the trial's
first object)
kills with SIGKILL:

  terraform  the terraform process(es) only: the provider must die with it (PR_SET_PDEATHSIG);
  provider   the provider plugin process(es): terraform reports the failure and exits;
  postgres   the postmaster and every backend (a server crash); it is restarted (crash
             recovery) once terraform has exited.

Then it runs `terraform apply` again, once, with no manual step, and checks:

  converged  that apply succeeded, `plan -detailed-exitcode` is empty, every resource is in
             the state and its role and database exist with their ownership markers;
  orphans    objects carrying this trial's marker (`resource=<name>`) whose resource is not
             in the state, plus objects named like this trial's that carry no marker;
  lost       resources that after the re-run are not both in the state and provisioned.

A trial that does not converge gets a second apply (reported as `2nd apply`) and, failing
that, is cleaned up by name. Every trial ends with `terraform destroy`, after which nothing of
it may be left (`left after destroy`). Target: converged = trials, orphans = 0, lost = 0.
The suite runs a short version (acceptance/recovery.rs `kill_during_apply_then_apply_converges`).
"""

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import schema as common  # noqa: E402  (bench/schema.py: tools env, terraform bins, build)

REPO = common.REPO
log, die = common.log, common.die
MARKER = "managed-by=terraform-provider-platform"


class Postgres:
    """A throwaway cluster from scripts/pg that can be crashed and restarted."""

    def __init__(self, root):
        self.dir = root / "pg"
        self.start()

    def start(self):
        # A crash of the server must not lose what it acknowledged (the test cluster's
        # default, synchronous_commit=off, would: the provider's last commits vanish).
        env = dict(os.environ, PG_SYNCHRONOUS_COMMIT="on")
        r = subprocess.run(["bash", str(REPO / "scripts/pg"), "start", str(self.dir)],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            die(f"scripts/pg start failed:\n{r.stdout}\n{r.stderr}")
        env = {}
        for line in (self.dir / "env").read_text().splitlines():
            m = re.match(r"export (\w+)=(.*)", line)
            if m:
                env[m.group(1)] = m.group(2)
        self.env = env

    def stop(self):
        subprocess.run(["bash", str(REPO / "scripts/pg"), "stop", str(self.dir)],
                       capture_output=True)

    def crash(self):
        """SIGKILL the postmaster and all its children."""
        pid_file = self.dir / "data" / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        for p in [pid, *[int(c) for c in children.stdout.split()]]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        while time.time() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)

    def sql(self, query, db="postgres"):
        env = dict(os.environ, **self.env)
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-d", db, "-c", query],
                           env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr.strip()}")
        return [line for line in r.stdout.splitlines() if line]


def config(names):
    parts = ['terraform {\n  required_providers {\n    platform = { source = "platform/platform" }\n'
             '  }\n}\n\nprovider "platform" {\n  default_team = "faults"\n}\n']
    for name in names:
        parts.append(f'resource "platform_postgres_database" "{name}" {{\n'
                     f'  name = "{name}"\n  tier = "small"\n}}\n')
    return "\n".join(parts)


def group_processes(pgid):
    """(pid, exe) of every live process in process group `pgid`."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid or fields[0] == "Z":
                continue
            out.append((int(entry.name), os.readlink(entry / "exe")))
        except (OSError, IndexError, ValueError):
            continue
    return out


def is_marker(comment, name, primitive):
    """Whether `comment` marks that primitive of resource `name` (any generation)."""
    base = f"{MARKER} offering=postgres_database resource={name} primitive={primitive}"
    return comment is not None and re.fullmatch(re.escape(base) + r"( generation=[0-9a-f]{12})?",
                                                comment) is not None


class Trial:
    def __init__(self, root, index, count, provider, tf, pg):
        self.names = [f"flt{index:03d}_{i:03d}" for i in range(count)]
        self.prefix = f"flt{index:03d}_"
        self.work = root / f"trial{index:03d}"
        self.work.mkdir()
        (self.work / "main.tf").write_text(config(self.names))
        cli = self.work / "cli.tfrc"
        cli.write_text('disable_checkpoint = true\nprovider_installation {\n'
                       f'  dev_overrides {{\n    "platform/platform" = "{provider.parent}"\n  }}\n'
                       '  direct {}\n}\n')
        self.tf = tf
        self.pg = pg
        self.env = common.base_env(cli)

    def env_now(self):
        return dict(self.env, **self.pg.env)

    def run(self, *args):
        return subprocess.run([self.tf, *args, "-no-color"], cwd=self.work, env=self.env_now(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)

    def apply(self):
        return self.run("apply", "-auto-approve", "-input=false")

    def spawn_apply(self):
        return subprocess.Popen([self.tf, "apply", "-auto-approve", "-input=false", "-no-color"],
                                cwd=self.work, env=self.env_now(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                process_group=0)

    def wait_first_object(self, proc, limit=120):
        """Waits until this trial's first role exists (or `proc` ended); the time then."""
        deadline = time.perf_counter() + limit
        while time.perf_counter() < deadline and proc.poll() is None:
            if self.pg.sql(f"SELECT 1 FROM pg_roles WHERE rolname LIKE '{self.prefix}%' LIMIT 1"):
                break
            time.sleep(0.01)
        return time.perf_counter()

    def in_state(self):
        r = self.run("state", "list")
        if r.returncode != 0:
            return set()
        return {line.split(".", 1)[1] for line in r.stdout.split() if "." in line}

    def objects(self):
        """{name: ok} for this trial's resources whose role and database both exist with
        their markers, and the orphan count given the state."""
        roles = dict(row.split("|", 1) for row in self.pg.sql(
            "SELECT rolname, coalesce(shobj_description(oid, 'pg_authid'), '') FROM pg_roles "
            f"WHERE rolname LIKE '{self.prefix}%'"))
        dbs = dict(row.split("|", 1) for row in self.pg.sql(
            "SELECT datname, coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database "
            f"WHERE datname LIKE '{self.prefix}%'"))
        return roles, dbs

    def check(self):
        state = self.in_state()
        roles, dbs = self.objects()
        provisioned = 0
        orphans = []
        for name in self.names:
            role, db = roles.get(f"{name}_owner"), dbs.get(name)
            ok = (name in state and is_marker(role, name, "owner") and is_marker(db, name, "db"))
            provisioned += ok
        for kind, objects in (("role", roles), ("database", dbs)):
            for obj, comment in objects.items():
                m = re.search(r" resource=(\S+) ", comment)
                owner = m.group(1) if m else None
                if owner is None:
                    orphans.append(f"{kind} {obj} (no marker)")
                elif owner not in state:
                    orphans.append(f"{kind} {obj}")
        return state, provisioned, orphans

    def cleanup(self):
        roles, dbs = self.objects()
        for db in dbs:
            self.pg.sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        for role in roles:
            self.pg.sql(f'DROP ROLE IF EXISTS "{role}"')


def first_error(out):
    text = out.stdout + out.stderr
    m = re.search(r"Error: (.*)\n(?:.*\n){0,6}?\n?(.*(?:exists|refused|marker|cannot|failed).*)", text)
    if m:
        return f"{m.group(1).strip()}: {m.group(2).strip()[:160]}"
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else f"exit {out.returncode}"


def kill(target, proc, pg):
    procs = group_processes(proc.pid)
    if target == "terraform":
        victims = [pid for pid, exe in procs if "terraform-provider-platform" not in exe]
    elif target == "provider":
        victims = [pid for pid, exe in procs if "terraform-provider-platform" in exe]
    else:
        pg.crash()
        return True
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return bool(victims)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=21, help="trials (default 21)")
    ap.add_argument("--resources", type=int, default=50, help="resources per apply (default 50)")
    ap.add_argument("--target", choices=["terraform", "provider", "postgres", "all"],
                    default="all", help="what to kill (default: all, in turn)")
    ap.add_argument("--tf", help="terraform binary (default: the first of PATH, .tools' 1.0.3)")
    ap.add_argument("--provider", type=Path, help="provider binary (default: build release)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()

    tools = common.load_tools_env()
    tf = args.tf or str(common.terraform_bins(tools)[0])
    provider = args.provider.resolve() if args.provider else common.build_provider()
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    targets = ["terraform", "provider", "postgres"] if args.target == "all" else [args.target]

    root = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    root.chmod(0o755)  # scripts/pg runs PostgreSQL as its own OS user under root
    pg = Postgres(root)
    results = []
    try:
        print(f"bench/faults.py: {args.n} trials of {args.resources} x platform_postgres_database, "
              f"Terraform {common.tf_version(tf)}, seed {seed}")
        # A clean apply first: how long provisioning takes, from the first object made to
        # terraform's exit. Kills land uniformly in that window, counted from the moment the
        # trial's first object appears.
        warm = Trial(root, 0, args.resources, provider, tf, pg)
        t0 = time.perf_counter()
        proc = warm.spawn_apply()
        first = warm.wait_first_object(proc)
        proc.wait()
        window = time.perf_counter() - first
        if proc.returncode != 0 or len(warm.in_state()) != args.resources:
            die("the clean apply failed; run it by hand in a kept dir (--keep)")
        warm.run("destroy", "-auto-approve", "-input=false")
        warm.cleanup()
        print(f"  clean apply: {time.perf_counter() - t0:.2f} s, of which provisioning "
              f"{window:.2f} s (kills land uniformly in its first 80%, from the first object made)")
        print(f"\n  {'trial':>5}  {'target':<9} {'at+':>6}  {'in state':>8}  {'re-run':<10} "
              f"{'orphans':>7} {'lost':>4}  {'left':>4}  note")
        for i in range(1, args.n + 1):
            target = targets[(i - 1) % len(targets)]
            trial = Trial(root, i, args.resources, provider, tf, pg)
            # An apply that beats the kill injected no fault: undo it and draw an earlier
            # instant (at most 5 times), so every trial is a real crash mid-apply.
            at_max, redraws = 0.8 * window, 0
            while True:
                at = rng.uniform(0.0, at_max)
                proc = trial.spawn_apply()
                trial.wait_first_object(proc)
                time.sleep(at)
                finished_first = proc.poll() is not None
                if not finished_first or redraws == 5:
                    break
                proc.wait()
                trial.run("destroy", "-auto-approve", "-input=false")
                trial.cleanup()
                redraws, at_max = redraws + 1, at
            if not finished_first:
                kill(target, proc, pg)
            try:
                proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            # No provider may outlive the apply.
            time.sleep(0.2)
            survivors = [pid for pid, exe in group_processes(proc.pid)
                         if "terraform-provider-platform" in exe]
            if target == "postgres":
                pg.start()
            before = len(trial.in_state())
            rerun = trial.apply()
            note = "apply finished before the kill" if finished_first else ""
            if redraws:
                note += f" (instant drawn {redraws + 1} times: the apply beat the earlier ones)"
            if survivors:
                note += f" provider outlived terraform: {survivors}"
            state, provisioned, orphans = trial.check()
            plan = trial.run("plan", "-detailed-exitcode", "-input=false")
            converged = (rerun.returncode == 0 and plan.returncode == 0
                         and provisioned == len(trial.names))
            outcome = "converged" if converged else "FAILED"
            if not converged:
                note += " " + first_error(rerun if rerun.returncode else plan)
                second = trial.apply()
                state, provisioned, orphans = trial.check()
                outcome = "2nd apply" if second.returncode == 0 and provisioned == len(trial.names) \
                    else "FAILED"
            lost = len(trial.names) - provisioned
            destroy = trial.run("destroy", "-auto-approve", "-input=false")
            roles, dbs = trial.objects()
            left = len(roles) + len(dbs)
            if destroy.returncode != 0:
                note += " destroy: " + first_error(destroy)
            if left:
                trial.cleanup()
            results.append(dict(target=target, faulted=not finished_first, converged=converged, orphans=len(orphans),
                                lost=lost, left=left, outcome=outcome, survivors=bool(survivors)))
            print(f"  {i:>5}  {target:<9} {at:5.2f}s  {before:>8}  {outcome:<10} {len(orphans):>7} "
                  f"{lost:>4}  {left:>4}  {note.strip()}", flush=True)
            if orphans:
                print(f"         orphans: {', '.join(orphans[:6])}")
            shutil.rmtree(trial.work, ignore_errors=True)

        print("\nsummary")
        print(f"  {'target':<10} {'trials':>6} {'killed mid-apply':>16} {'converged':>9} {'orphans':>7} {'lost':>4} "
              f"{'left after destroy':>18} {'provider outlived':>17}")
        for target in [*targets, "all"]:
            rs = [r for r in results if target == "all" or r["target"] == target]
            if not rs or (target == "all" and len(targets) == 1):
                continue
            print(f"  {target:<10} {len(rs):>6} {sum(r['faulted'] for r in rs):>16} "
                  f"{sum(r['converged'] for r in rs):>9} "
                  f"{sum(r['orphans'] for r in rs):>7} {sum(r['lost'] for r in rs):>4} "
                  f"{sum(r['left'] for r in rs):>18} {sum(r['survivors'] for r in rs):>17}")
        ok = all(r["converged"] and not r["orphans"] and not r["lost"] and not r["left"]
                 for r in results)
        print(f"\ntarget converged = trials, orphans = 0, lost = 0: {'MET' if ok else 'NOT MET'}")
        return 0 if ok else 1
    finally:
        pg.stop()
        if args.keep:
            log(f"bench: kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

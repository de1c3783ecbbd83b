#!/usr/bin/env python3
"""Load on the control plane: many clients queue runs across workspaces of one server.

    python3 bench/server.py                              # 200 runs, 20 workspaces, 50 clients, 4 workers
    python3 bench/server.py --runs 500 --workers 8
    python3 bench/server.py --store postgres://...       # the shared store instead of SQLite
    python3 bench/server.py --fault kill9                # two servers on PostgreSQL; kill -9 one mid-plan, mid-apply
    python3 bench/server.py --fault pg-restart           # restart PostgreSQL for a few seconds under load
    python3 bench/server.py --overhead                   # the server's own time per run vs terraform's
    python3 bench/server.py --overhead --platform        # ... with a platform resource per workspace
    python3 bench/server.py --broker target/release/platform-broker   # no cargo build

It builds the release broker (unless --broker), starts `platform-broker serve`
(--insecure-dev-auth on loopback) on a throwaway data directory, makes a git repository with
one Terraform directory per workspace (a null_resource whose trigger changes every run,
hashicorp/null from the test mirror; with --platform also a platform_postgres_database, the
provider from a filesystem mirror against a PostgreSQL cluster the bench starts), and creates
the workspaces. Then CLIENTS threads queue
the runs (round robin over the workspaces), approve each one as another user once it is
planned, and wait for every run to end; meanwhile a reader thread times
`GET /v1/workspaces/NAME/runs` over and over.

It prints: runs queued / ended / by final status; whether every run was claimed exactly once
(one `run.planning` and at most one `run.applying` audit event each) and each workspace's runs
were claimed in queue order; runs per minute; the reads' p50/p99 latency while runs execute;
the queue wait (queued -> claimed) p50/p95; and whether the audit chain verifies.
Targets (issue 16): p99 of reads < 50 ms while runs execute.

Every check prints a `PASS` or `FAIL` line; the exit status is 1 when one failed. Targets
(latency, overhead) print `TARGET ... MET` / `NOT MET` and do not change the exit status.
An errored run fails the plain load (`no run errored`), with its status_detail and the
server's stderr lines about it. Runs refused at apply because their plan went stale (the
server plans run N+1 of a workspace while run N waits for its approval; once N applies, N+1's
plan no longer matches the state) are counted on one line; the fault modes do not count them
against the fault.

Reliability (issue 16), on a throwaway PostgreSQL cluster of the bench's own (scripts/pg under
the temp dir, synchronous_commit=on) with a fresh database, unless --store is given:

  --fault kill9       two `serve` processes (A and B) share the store and the data directory
                      (the plan bundles live there), each in its own process group, with a short
                      --lease (default 6s). While the load runs, A is killed with SIGKILL (its
                      whole process group: terraform and the provider die with it) once while one
                      of its workers runs `terraform plan`, then, after a restart on the same
                      port, again while one runs `terraform apply` (seen in /proc and confirmed by
                      GET /v1/runs/ID: planning/applying, claimed_by names A's pid); A is
                      restarted each time. Clients talk to both servers (a request A refuses is
                      sent to B). The runs a kill left behind are `errored` by the reaper once
                      their lease runs out, never retried; the bench then queues a follow-up run
                      for every workspace whose last run did not apply, until each converges.
  --fault pg-restart  one `serve` with a short --lease (default 10s); the clients queue a
                      steady stream (one run every --interval / CLIENTS s, default 8 s per
                      client) so that queueing goes on through the outage. Once a fifth of the
                      runs ended and terraform is running, PostgreSQL is stopped (`scripts/pg
                      stop`, a fast shutdown) for --outage seconds (default 5) and started again;
                      /healthz is probed every 0.25 s (each probe on its own thread). Queue
                      requests that fail are retried (each failure counted). Errored runs get a
                      follow-up as above.

Both then check: no run is left non-final (queued, planning, planned, needs_approval,
approved, applying); every run the API acknowledged (202) exists; no run was claimed twice
for a phase; the runs killed mid-plan/apply are `errored` with the lease reason, and every
other run is `applied` (kill9; with pg-restart, runs errored by the outage are listed with
their status_detail and the server's stderr lines about them); each workspace's state
versions are numbered 1..n with strictly increasing serials, the newest one is what
GET .../state serves and was written by the newest applied run, and every applied run wrote
one; no run that wrote state ended `errored` (outside the killed ones); no run directory holds
an errored.tfstate (state terraform could not store); the audit chain verifies. pg-restart also
prints the requests sent while PostgreSQL was down (answers, JSON error bodies, slowest) and
checks that each got an HTTP answer, failures a 5xx JSON error, none was held more than 2 s
past PostgreSQL's return, /healthz is ok again, and no run was errored by its lease while its
server lived (a renewal or report the outage cost: the run's work is thrown away).

  --overhead          one workspace, one worker (SQLite), sequential: N (default 10) runs of
                      the server, timed from its audit events (queued -> planned plus
                      approved -> applied); the same work with the local broker CLI
                      (`platform-broker plan DIR`, then `apply --dir DIR`, local backend); and
                      bare terraform (init, `plan -out`, `apply PLAN`). Each local iteration uses
                      a fresh directory holding the previous iteration's state, as every server
                      run checks out afresh. Prints the medians side by side with ratios; the
                      server's own overhead is server - CLI (the same run layer without the
                      server), as a share of terraform's time. Target (issue 16): < 5%. Also
                      prints the phases (the server's claim waits, its plan and apply; the CLI's
                      plan and apply; terraform's init, plan, apply).
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import schema as common  # noqa: E402  (bench/schema.py: tools env, terraform bins, build)

REPO = common.REPO
log, die = common.log, common.die

FINAL = ("applied", "errored", "denied", "discarded", "expired")
WAITING = ("planned", "needs_approval")
LEASE_REASON = "stopped renewing its lease"


# --------------------------------------------------------------------------- checks


class Checks:
    """PASS/FAIL lines; `failed` says whether the bench must exit non-zero."""

    def __init__(self):
        self.failures = []

    def __call__(self, name, ok, detail=""):
        print(f"  {'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""),
              flush=True)
        if not ok:
            self.failures.append(name)
        return ok

    @staticmethod
    def target(name, met, detail=""):
        print(f"  TARGET {name}: {'MET' if met else 'NOT MET'}" + (f" ({detail})" if detail else ""),
              flush=True)

    @staticmethod
    def info(name, detail=""):
        print(f"  INFO {name}" + (f": {detail}" if detail else ""), flush=True)

    @property
    def failed(self):
        return bool(self.failures)


# --------------------------------------------------------------------------- HTTP


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def parse_time(ts):
    """Unix seconds of an RFC 3339 time (any number of fractional digits)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", ts)
    if not m:
        raise ValueError(f"not an RFC 3339 time: {ts!r}")
    t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    if m.group(3) != "Z":
        sign = 1 if m.group(3)[0] == "+" else -1
        t -= sign * timedelta(hours=int(m.group(3)[1:3]), minutes=int(m.group(3)[4:6]))
    return t.timestamp() + (float("0." + m.group(2)) if m.group(2) else 0.0)


class Failure:
    __slots__ = ("at", "seconds", "method", "path", "code", "json_error", "detail")

    def __init__(self, at, seconds, method, path, code, json_error, detail):
        self.at, self.seconds, self.method, self.path = at, seconds, method, path
        self.code, self.json_error, self.detail = code, json_error, detail


class Api:
    """Calls to one or more servers (the first is the default); records every call that
    failed (a 5xx, or no HTTP answer at all) for the outage report."""

    def __init__(self, bases, timeout=30):
        self.bases = list(bases)
        self.timeout = timeout
        self.lock = threading.Lock()
        self.failures = []
        self.calls = []  # (sent at, seconds, status or None, method, path): every call
        self.rr = 0

    def call(self, method, path, user="bench", body=None, base=None, timeout=None):
        """(status or None when there was no HTTP answer, JSON body or {'transport': ...})."""
        base = base or self.bases[0]
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + path, data=data, method=method)
        req.add_header("x-platform-dev-user", user)
        if data is not None:
            req.add_header("content-type", "application/json")
        at, t0 = time.time(), time.perf_counter()
        refused = False
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                code, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            code, raw = e.code, e.read()
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", e)
            refused = isinstance(reason, ConnectionRefusedError)
            code, raw = None, None
            doc = {"transport": f"{type(reason).__name__}: {reason}", "refused": refused}
        if code is not None:
            try:
                doc = json.loads(raw or b"null")
            except ValueError:
                doc = {"raw": raw[:200].decode(errors="replace")}
        seconds = time.perf_counter() - t0
        with self.lock:
            self.calls.append((at, seconds, code, method, path))
        if code is None or code >= 500:
            json_error = isinstance(doc, dict) and isinstance(doc.get("error"), dict) \
                and "code" in doc["error"]
            with self.lock:
                self.failures.append(Failure(at, seconds, method, path, code, json_error,
                                             doc if code is None else doc.get("error", doc)))
        return code, doc

    def call_any(self, method, path, user="bench", body=None, resend=True):
        """`call` on the servers in turn; a refused connection (nothing was sent) goes to the
        next one, and so does any failure without an HTTP answer when `resend`."""
        with self.lock:
            start = self.rr
            self.rr += 1
        code, doc = None, None
        for i in range(len(self.bases)):
            base = self.bases[(start + i) % len(self.bases)]
            code, doc = self.call(method, path, user, body, base=base)
            if code is not None or not (resend or doc.get("refused")):
                break
        return code, doc


# --------------------------------------------------------------------------- processes


def group_processes(pgid):
    """(pid, exe, argv, cwd) of every live process in process group `pgid`."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid or fields[0] == "Z":
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                cwd = ""
            out.append((int(entry.name), os.readlink(entry / "exe"),
                        [a.decode(errors="replace") for a in argv if a], cwd))
        except (OSError, IndexError, ValueError):
            continue
    return out


def terraform_processes(pgid, command=None):
    """terraform (not provider) processes of the group, optionally running `command`, with
    the run id their working directory names (DATA/runs/ID/...)."""
    found = []
    for pid, exe, argv, cwd in group_processes(pgid):
        name = os.path.basename(exe)
        if not name.startswith("terraform") or name.startswith("terraform-provider"):
            continue
        if command and (len(argv) < 2 or argv[1] != command):
            continue
        m = re.search(r"/runs/([0-9a-f-]{36})(/|$)", cwd)
        found.append((pid, argv[1] if len(argv) > 1 else "", m.group(1) if m else None))
    return found


class Serve:
    """One `platform-broker serve`, in its own process group (start_new_session): kill9
    takes terraform and the providers with it."""

    def __init__(self, label, broker, tf, data_dir, env, log_path, workers, lease=None,
                 store=None):
        self.label, self.env, self.log_path = label, env, log_path
        self.cmd = [str(broker), "--terraform", tf, "serve", "--insecure-dev-auth",
                    "--data-dir", str(data_dir), "--workers", str(workers)]
        if lease:
            self.cmd += ["--lease", lease]
        if store:
            self.cmd += ["--store", store]
        self.proc, self.base, self.port, self.pgids = None, None, 0, []

    def start(self):
        with open(self.log_path, "a") as f:
            f.write(f"--- bench: start {self.label} at {time.time():.3f}\n")
        stderr = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.cmd + ["--listen", f"127.0.0.1:{self.port}"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=stderr, env=self.env, text=True,
                                     start_new_session=True)
        stderr.close()
        self.pgids.append(self.proc.pid)
        first = self.proc.stdout.readline()
        base = next((w for w in first.split() if w.startswith("http://")), None)
        if not base:
            self.stop()
            die(f"serve {self.label} did not start: {first}\n{Path(self.log_path).read_text()}")
        self.base = base if base.endswith("/") else base + "/"
        self.port = urllib.parse.urlparse(self.base).port
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        return self

    @property
    def pid(self):
        return self.proc.pid

    def kill9(self):
        """SIGKILL to the whole process group; returns what it held (pid, exe) and what is
        left of the group after 10 s (should be nothing)."""
        pgid = self.proc.pid
        before = [(p, os.path.basename(e)) for p, e, _, _ in group_processes(pgid)]
        os.killpg(pgid, signal.SIGKILL)
        self.proc.wait()
        deadline = time.time() + 10
        left = group_processes(pgid)
        while left and time.time() < deadline:
            time.sleep(0.05)
            left = group_processes(pgid)
        return before, left

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left in any of its process groups (a terraform past the grace).
        for pgid in self.pgids:
            if group_processes(pgid):
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if self.proc:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def log_lines(self, needle=None):
        try:
            lines = Path(self.log_path).read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if needle is None or needle in line]


class Postgres:
    """The bench's own throwaway cluster (scripts/pg), which it may stop and start."""

    def __init__(self, directory):
        self.dir = directory
        self.env = {}

    def start(self):
        env = dict(os.environ, PG_SYNCHRONOUS_COMMIT="on")
        r = subprocess.run(["bash", str(REPO / "scripts/pg"), "start", str(self.dir)],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"scripts/pg start failed:\n{r.stdout}\n{r.stderr}")
        for line in (self.dir / "env").read_text().splitlines():
            m = re.match(r"export (\w+)=(.*)", line)
            if m:
                self.env[m.group(1)] = m.group(2)

    def stop(self):
        subprocess.run(["bash", str(REPO / "scripts/pg"), "stop", str(self.dir)],
                       capture_output=True)

    def psql(self, query):
        env = dict(os.environ, **self.env)
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres",
                            "-c", query], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr.strip()}")

    def url(self, db):
        q = urllib.parse.quote
        return (f"postgres://{q(self.env['PGUSER'])}:{q(self.env['PGPASSWORD'], safe='')}"
                f"@127.0.0.1:{self.env['PGPORT']}/{db}")


# --------------------------------------------------------------------------- setup


def make_repo(root, names, sleep=0, platform=False):
    repo = root / "repo"
    for name in names:
        d = repo / name
        d.mkdir(parents=True)
        (d / "main.tf").write_text(main_tf(sleep, f"bench_{name}" if platform else None))
    git = ["git", "-C", str(repo), "-c", "user.email=b@localhost", "-c", "user.name=b"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "bench"], check=True)
    return repo


def main_tf(sleep=0, database=None):
    """A null_resource replaced by every run; with `database`, also a platform database of
    that name (the platform provider against the bench's PostgreSQL: refreshed by every plan,
    the provider started by every terraform command)."""
    text = ('terraform {\n  required_providers {\n'
            '    null = { source = "hashicorp/null", version = "2.1.2" }\n')
    if database:
        text += '    platform = { source = "platform/platform", version = "0.1.0" }\n'
    text += ('  }\n}\n'
             'resource "null_resource" "r" {\n  triggers = { t = timestamp() }\n')
    if sleep:
        text += f'  provisioner "local-exec" {{\n    command = "sleep {sleep}"\n  }}\n'
    text += '}\n'
    if database:
        text += (f'resource "platform_postgres_database" "d" {{\n  name   = "{database}"\n'
                 '  team   = "bench"\n  tier   = "small"\n  labels = { owner = "bench" }\n}\n')
    return text


def create_workspaces(api, repo, names):
    for name in names:
        code, doc = api.call("POST", "v1/workspaces", body={
            "name": name, "team": "bench", "environment": "dev",
            "source": {"kind": "git", "url": f"file://{repo}", "path": name}})
        if code != 201:
            die(f"create {name}: {code} {doc}")


# --------------------------------------------------------------------------- load


class Load:
    """CLIENTS threads queue RUNS runs round robin over the workspaces, approve each once
    planned (as another user), and follow them until they end or the deadline passes."""

    def __init__(self, api, names, runs, clients, deadline, interval=0.0):
        self.api, self.names, self.runs, self.clients = api, names, runs, clients
        self.interval = interval  # seconds between a client's queue requests
        self.deadline = deadline
        self.lock = threading.Lock()
        self.acked = {}        # run id -> workspace name (answered 202)
        self.results = {}      # run id -> the run once final
        self.queue_retries = 0  # queue requests that failed and were sent again
        self.queue_given_up = 0
        self.followups = set()  # run ids of the follow-ups (acknowledged too)
        self.counter = iter(range(runs))
        self.read_ms = []
        self.stop_reading = threading.Event()
        self.threads = []

    def reader(self):
        i = 0
        while not self.stop_reading.is_set():
            t0 = time.perf_counter()
            code, _ = self.api.call_any("GET", f"v1/workspaces/{self.names[i % len(self.names)]}/runs")
            if code == 200:
                self.read_ms.append((time.perf_counter() - t0) * 1e3)
            i += 1
            time.sleep(0.02)

    def queue(self, name, user):
        """The run's id once a server acknowledged it (202); retries failures for a minute."""
        for _ in range(120):
            code, run = self.api.call_any("POST", f"v1/workspaces/{name}/runs", user=user,
                                          resend=False)
            if code == 202:
                with self.lock:
                    self.acked[run["id"]] = name
                return run["id"]
            with self.lock:
                self.queue_retries += 1
            time.sleep(0.5)
        with self.lock:
            self.queue_given_up += 1
        return None

    def step(self, pending, c):
        """One pass over `pending`: approves what waits for it, drops what ended."""
        for rid in list(pending):
            code, run = self.api.call_any("GET", f"v1/runs/{rid}", user=f"dev{c}")
            status = run.get("status") if code == 200 else None
            if status in WAITING:
                self.api.call_any("POST", f"v1/runs/{rid}/approve", user=f"reviewer{c}",
                                  body={"reason": "bench"})
            elif status in FINAL:
                pending.discard(rid)
                with self.lock:
                    self.results[rid] = run

    def drive(self, ids, c):
        """Approves and follows `ids` until each is final (or the deadline)."""
        pending = set(ids)
        while pending and time.time() < self.deadline:
            self.step(pending, c)
            time.sleep(0.2)

    def client(self, c):
        # With an interval, run n is queued at start + n * interval / clients (a steady
        # stream); meanwhile the client approves and follows what it queued.
        pending = set()
        while True:
            with self.lock:
                n = next(self.counter, None)
            if n is None:
                break
            due = self.wall0 + n * self.interval / max(1, self.clients)
            while time.time() < due:
                self.step(pending, c)
                time.sleep(min(0.2, max(0.0, due - time.time())))
            rid = self.queue(self.names[n % len(self.names)], f"dev{c}")
            if rid:
                pending.add(rid)
        self.drive(pending, c)

    def start(self):
        self.t0, self.wall0 = time.perf_counter(), time.time()
        self.threads = [threading.Thread(target=self.reader, daemon=True)]
        self.threads += [threading.Thread(target=self.client, args=(c,), daemon=True)
                         for c in range(self.clients)]
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads[1:]:
            t.join()
        self.elapsed = time.perf_counter() - self.t0
        self.stop_reading.set()
        self.threads[0].join()


def all_runs(api, names):
    """Every run of the workspaces, by id (with `ws`)."""
    runs = {}
    for name in names:
        for _ in range(60):
            code, doc = api.call_any("GET", f"v1/workspaces/{name}/runs")
            if code == 200:
                break
            time.sleep(0.5)
        else:
            die(f"cannot list the runs of {name}: {code} {doc}")
        for run in doc["runs"]:
            runs[run["id"]] = dict(run, ws=name)
    return runs


def audit_events(api):
    events, after = [], 0
    while True:
        for _ in range(60):
            code, page = api.call_any("GET", f"v1/audit/events?after={after}&limit=1000")
            if code == 200:
                break
            time.sleep(0.5)
        else:
            die(f"cannot read the audit events: {code} {page}")
        events += [json.loads(line) for line in page["events"]]
        if not page.get("next"):
            return events
        after = page["next"]


class Claims:
    """Per run, from the audit chain: claims per phase, event times, claim order."""

    def __init__(self, events):
        self.planning, self.applying = {}, {}
        self.times = {}    # (run, type) -> unix seconds (the last such event)
        self.order = {}    # workspace id -> numbers in the order they were claimed to plan
        for e in events:
            kind = e["type"].rsplit(".", 1)[-1]
            data = e.get("data") or {}
            rid = data.get("run")
            if not rid or not e["type"].startswith("dev.platform.broker.run."):
                continue
            self.times[(rid, kind)] = parse_time(e["time"])
            if kind == "planning":
                self.planning[rid] = self.planning.get(rid, 0) + 1
                self.order.setdefault(e.get("subject"), []).append(data.get("number"))
            elif kind == "applying":
                self.applying[rid] = self.applying.get(rid, 0) + 1

    def once(self, ids):
        """Run ids claimed more than once for a phase (or never planned)."""
        return sorted(r for r in ids
                      if self.planning.get(r, 0) != 1 or self.applying.get(r, 0) > 1)

    def in_order(self):
        return all(nums == sorted(nums) for nums in self.order.values())


def drive_all(api, ids, deadline):
    """Approves and follows `ids` to the end from this thread."""
    load = Load(api, [], 0, 0, deadline)
    load.drive(ids, "f")
    return load.results


def settle(api, names, load, deadline):
    """Runs no client knows of (a 202 lost on its way, a queue request sent again) that
    wait for an approval get one, before any follow-up is queued; returns their ids."""
    runs = all_runs(api, names)
    unknown = [r for r, run in runs.items() if r not in load.acked and run["status"] not in FINAL]
    if unknown:
        drive_all(api, unknown, deadline)
    return unknown


def converge(api, names, deadline, load, rounds=3):
    """Queues a follow-up run for every workspace whose last run did not apply, until each
    converges; returns {round: {ws: final status}}."""
    history = []
    for _ in range(rounds):
        runs = all_runs(api, names)
        last = {}
        for run in runs.values():
            if run["ws"] not in last or run["number"] > last[run["ws"]]["number"]:
                last[run["ws"]] = run
        todo = [n for n in names if n not in last or last[n]["status"] != "applied"]
        if not todo:
            break
        ids = {}
        for name in todo:
            code, run = api.call_any("POST", f"v1/workspaces/{name}/runs", user="followup",
                                     resend=False)
            if code == 202:
                ids[run["id"]] = name
                load.followups.add(run["id"])
        done = drive_all(api, list(ids), deadline)
        history.append({ids[r]: done[r]["status"] if r in done else "unfinished" for r in ids})
    return history


# --------------------------------------------------------------------------- checks


def state_checks(api, names, runs, chk, serve_data_dirs, excused=()):
    """No state version lost: per workspace, versions 1..n with strictly increasing serials;
    the newest is what GET state serves and comes from the newest applied run; every applied
    run wrote one; no run that wrote state ended errored (outside `excused`); no
    errored.tfstate anywhere under the run directories."""
    gaps, not_increasing, head_mismatch, not_newest, missing, wrote_but_errored = \
        [], [], [], [], [], []
    for name in names:
        code, doc = api.call_any("GET", f"v1/workspaces/{name}/state/versions")
        if code != 200:
            gaps.append(f"{name}: versions {code}")
            continue
        versions = doc["versions"]
        if [v["version"] for v in versions] != list(range(1, len(versions) + 1)):
            gaps.append(f"{name}: {[v['version'] for v in versions]}")
        serials = [v["serial"] for v in versions]
        if any(b <= a for a, b in zip(serials, serials[1:])):
            not_increasing.append(f"{name}: {serials}")
        writers = {}
        for v in versions:
            m = re.search(r"run-([0-9a-f-]{36})$", v["created_by"])
            if m:
                writers.setdefault(m.group(1), []).append(v["version"])
        ws_runs = sorted((r for r in runs.values() if r["ws"] == name), key=lambda r: r["number"])
        applied = [r for r in ws_runs if r["status"] == "applied"]
        for r in applied:
            if r["id"] not in writers:
                missing.append(f"{name} run {r['number']} {r['id']}")
        for r in ws_runs:
            if r["status"] == "errored" and r["id"] in writers and r["id"] not in excused:
                wrote_but_errored.append(f"{name} run {r['number']} {r['id']} wrote version(s) "
                                         f"{writers[r['id']]}; status_detail: {r.get('status_detail')}")
        if versions:
            code, state = api.call_any("GET", f"v1/workspaces/{name}/state")
            head = versions[-1]
            if code != 200 or state.get("serial") != head["serial"] \
                    or state.get("lineage") != head["lineage"]:
                head_mismatch.append(f"{name}: GET state {code} serial {state.get('serial')} "
                                     f"vs version {head['version']} serial {head['serial']}")
            if applied and head["version"] not in writers.get(applied[-1]["id"], []):
                not_newest.append(f"{name}: newest version {head['version']} by "
                                  f"{head['created_by']}, newest applied run {applied[-1]['id']}")
    chk("state versions numbered 1..n per workspace", not gaps, "; ".join(gaps[:5]))
    chk("state serials strictly increase", not not_increasing, "; ".join(not_increasing[:5]))
    chk("GET state serves the newest version", not head_mismatch, "; ".join(head_mismatch[:5]))
    chk("newest version written by the newest applied run", not not_newest,
        "; ".join(not_newest[:5]))
    chk("every applied run stored a state version", not missing,
        f"{len(missing)} without: " + "; ".join(missing[:5]) if missing else
        f"{sum(r['status'] == 'applied' for r in runs.values())} applied runs")
    chk("no run that stored state ended errored", not wrote_but_errored,
        "; ".join(wrote_but_errored[:5]))
    orphans = []
    for data in serve_data_dirs:
        orphans += [str(p) for p in (Path(data) / "runs").glob("*/src/*/errored.tfstate")]
    chk("no errored.tfstate left (state terraform could not store)", not orphans,
        "; ".join(orphans[:5]))


def common_checks(api, names, load, chk, serves, killed=()):
    """The checks both fault modes share; returns (runs, claims)."""
    runs = all_runs(api, names)
    stuck = [r for r in runs.values() if r["status"] not in FINAL]
    chk("no run left non-final", not stuck,
        "; ".join(f"{r['ws']} #{r['number']} {r['id']} {r['status']} "
                  f"(claimed_by {r.get('claimed_by')})" for r in stuck[:10])
        or f"{len(runs)} runs, all final")
    known = set(load.acked) | load.followups
    unacked = [r for r in runs if r not in known]
    missing = [r for r in known if r not in runs]
    chk("every acknowledged (202) run exists", not missing,
        f"{len(known)} acknowledged ({len(load.followups)} of them follow-ups)"
        + (f"; missing: {missing[:5]}" if missing else ""))
    if unacked:
        Checks.info("runs stored but never acknowledged to the bench",
                    ", ".join(f"{runs[r]['ws']} #{runs[r]['number']} {r} {runs[r]['status']}"
                              for r in unacked))
    claims = Claims(audit_events(api))
    twice = claims.once(runs)
    chk("every run claimed exactly once per phase (never retried)", not twice,
        "; ".join(f"{r}: planning x{claims.planning.get(r, 0)}, applying x{claims.applying.get(r, 0)}"
                  for r in twice[:5]))
    chk("per-workspace claim order kept", claims.in_order())
    bad_kill = [f"{rid} {runs[rid]['status']}: {runs[rid].get('status_detail')}"
                for rid in killed if rid in runs and not (
                    runs[rid]["status"] == "errored"
                    and LEASE_REASON in (runs[rid].get("status_detail") or ""))]
    if killed:
        chk("killed runs errored with the lease reason", not bad_kill and all(r in runs for r in killed),
            "; ".join(bad_kill[:5]) or f"{len(killed)} run(s): " + "; ".join(
                f"{r[:8]} {runs[r].get('status_detail')}" for r in killed if r in runs))
    state_checks(api, names, runs, chk, {s.data_dir for s in serves}, excused=set(killed))
    code, report = api.call_any("GET", "v1/audit/verify")
    chk("audit chain verifies", code == 200 and report.get("ok"),
        f"{report.get('events')} events" if code == 200 else f"{code} {report}")
    return runs, claims


def print_load(args, load, runs, claims):
    by_status = {}
    for run in load.results.values():
        by_status[run["status"]] = by_status.get(run["status"], 0) + 1
    print(f"  runs: queued {args.runs}, acknowledged {len(load.acked)}, ended {len(load.results)}, "
          + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())))
    print(f"  throughput: {len(load.results) / load.elapsed * 60:.1f} runs/minute "
          f"({load.elapsed:.1f} s)")
    if load.read_ms:
        print(f"  GET /v1/workspaces/NAME/runs while runs execute: n={len(load.read_ms)} "
              f"p50 {statistics.median(load.read_ms):.1f} ms, "
              f"p99 {percentile(load.read_ms, 99):.1f} ms")
    waits = [claims.times[(r, "planning")] - claims.times[(r, "queued")] for r in load.results
             if (r, "planning") in claims.times and (r, "queued") in claims.times]
    if waits:
        print(f"  queue wait (queued -> claimed): p50 {statistics.median(waits):.1f} s, "
              f"p95 {percentile(waits, 95):.1f} s")


ACCESS_LOG = re.compile(r"^[A-Z]+ /\S* \d{3} ")
# The server plans run N+1 of a workspace while run N waits for its approval; once N
# applies, N+1's plan is stale and its apply is refused with one of these.
STALE = ("the state changed since the plan", "the plan was made against an empty state")


def is_stale(run):
    return run["status"] == "errored" and any(s in (run.get("status_detail") or "")
                                              for s in STALE)


def explain_errored(runs, serves, excused=()):
    """INFO lines for every errored run outside `excused`: its status_detail and the
    servers' stderr lines about it (not the access log); stale plans in one line.
    Returns (stale, other) errored runs."""
    errored = [r for r in runs.values() if r["status"] == "errored" and r["id"] not in excused]
    stale = [r for r in errored if is_stale(r)]
    other = [r for r in errored if not is_stale(r)]
    if stale:
        Checks.info("runs errored by a stale plan (planned while an earlier run of the "
                    "workspace waited for approval, refused at apply once that one applied)",
                    f"{len(stale)}: " + ", ".join(f"{r['ws']} #{r['number']}" for r in stale[:12])
                    + f"; e.g. {stale[0]['id']}: {stale[0].get('status_detail')}")
    for r in sorted(other, key=lambda r: (r["ws"], r["number"])):
        Checks.info(f"errored {r['ws']} #{r['number']} {r['id']}", r.get("status_detail") or "")
        m = re.search(r"the worker (\S+) stopped", r.get("status_detail") or "")
        for s in serves:
            lines = [line for line in s.log_lines() if not ACCESS_LOG.match(line) and (
                r["id"] in line or (m and f"worker {m.group(1)}:" in line))]
            for line in lines[:8]:
                print(f"      [{s.label} stderr] {line}")
    return stale, other


# --------------------------------------------------------------------------- modes


def mode_load(args, ctx, chk):
    """The plain load (no fault)."""
    names = [f"ws-{w}" for w in range(args.workspaces)]
    repo = make_repo(ctx.root, names, platform=args.platform)
    serve = ctx.serve("server", ctx.root / "data", args.workers, store=args.store)
    api = Api([serve.base])
    create_workspaces(api, repo, names)
    print(f"bench/server.py: {args.runs} runs over {args.workspaces} workspaces, "
          f"{args.clients} clients, {args.workers} workers, Terraform {ctx.tf_version}, "
          f"store {'PostgreSQL' if args.store else 'SQLite'}", flush=True)
    load = Load(api, names, args.runs, args.clients, time.time() + args.timeout,
                interval=args.interval or 0)
    load.start()
    load.join()
    runs = all_runs(api, names)
    claims = Claims(audit_events(api))
    print_load(args, load, runs, claims)
    chk("every run ended", len(load.results) == args.runs,
        f"{len(load.results)} of {args.runs}")
    twice = claims.once(load.results)
    chk("claimed exactly once", not twice, ", ".join(twice[:5]))
    chk("per-workspace claim order kept", claims.in_order())
    stale, other = explain_errored({r: runs[r] for r in load.results if r in runs}, [serve])
    chk("no run errored", not stale and not other,
        f"{len(stale)} by a stale plan, {len(other)} otherwise" if stale or other else "")
    code, report = api.call("GET", "v1/audit/verify")
    chk("audit chain verifies", code == 200 and report.get("ok"), f"{report.get('events')} events")
    if load.read_ms:
        p99 = percentile(load.read_ms, 99)
        Checks.target("p99 of reads < 50 ms while runs execute", p99 < 50, f"{p99:.1f} ms")


def mode_kill9(args, ctx, chk):
    names = [f"ws-{w}" for w in range(args.workspaces)]
    repo = make_repo(ctx.root, names, sleep=args.sleep, platform=args.platform)
    store = ctx.postgres_store()
    data = ctx.root / "data"
    lease = args.lease or "6s"
    # B (the survivor) first: it migrates the fresh store.
    b = ctx.serve("B", data, args.workers, lease=lease, store=store)
    a = ctx.serve("A", data, args.workers, lease=lease, store=store)
    api = Api([b.base, a.base])
    create_workspaces(api, repo, names)
    print(f"bench/server.py --fault kill9: {args.runs} runs over {args.workspaces} workspaces, "
          f"{args.clients} clients, 2 servers x {args.workers} workers, lease {lease}, "
          f"Terraform {ctx.tf_version}, store PostgreSQL (shared), shared data directory",
          flush=True)
    deadline = time.time() + args.timeout
    load = Load(api, names, args.runs, args.clients, deadline, interval=args.interval or 0)
    kills = []

    def killer():
        for phase in ("plan", "apply"):
            hit = None
            give_up = time.time() + args.timeout / 2
            while hit is None and time.time() < give_up and any(
                    t.is_alive() for t in load.threads[1:]):
                for pid, _, rid in terraform_processes(a.pid, phase):
                    if not rid:
                        continue
                    code, run = api.call("GET", f"v1/runs/{rid}", base=b.base)
                    want = "planning" if phase == "plan" else "applying"
                    if code == 200 and run["status"] == want \
                            and str(a.pid) in (run.get("claimed_by") or ""):
                        hit = (pid, rid, run)
                        break
                else:
                    time.sleep(0.02)
            if hit is None:
                kills.append({"phase": phase, "missed": True})
                continue
            old_pid = a.pid
            t_kill = time.time()
            held, left = a.kill9()
            # What the kill left behind: active runs claimed by A's workers.
            active = [r for r in all_runs(Api([b.base]), names).values()
                      if r["status"] in ("planning", "applying")
                      and f"-{old_pid}-w" in (r.get("claimed_by") or "")]
            kills.append({"phase": phase, "pid": old_pid, "terraform_pid": hit[0], "run": hit[1],
                          "claimed_by": hit[2]["claimed_by"], "at": t_kill,
                          "held": held, "left": left,
                          "active": [(r["id"], r["status"]) for r in active]})
            time.sleep(args.down)
            a.start()

    load.start()
    kt = threading.Thread(target=killer, daemon=True)
    kt.start()
    load.join()
    kt.join(timeout=60)
    # Let the leases of whatever the kills left run out, then converge every workspace.
    lease_s = parse_duration(lease)
    time.sleep(lease_s + 6)
    settled = settle(api, names, load, time.time() + args.timeout)
    followups = converge(api, names, time.time() + args.timeout, load)

    for k in kills:
        if k.get("missed"):
            continue
        tf = sum(1 for _, e in k["held"] if e.startswith("terraform") and not e.startswith("terraform-provider"))
        prov = sum(1 for _, e in k["held"] if e.startswith("terraform-provider"))
        print(f"  kill -9 of A (pid {k['pid']}) during terraform {k['phase']} of run {k['run']} "
              f"(terraform pid {k['terraform_pid']}, claimed_by {k['claimed_by']}): "
              f"group had {len(k['held'])} processes ({tf} terraform, {prov} provider); "
              f"runs it held: " + ", ".join(f"{r} {s}" for r, s in k["active"]), flush=True)
    for phase in ("plan", "apply"):
        k = next((k for k in kills if k["phase"] == phase), None)
        chk(f"killed A during terraform {phase}", k is not None and not k.get("missed"))
        if k and not k.get("missed"):
            chk(f"kill -9 during {phase} took the whole group (terraform, providers)",
                not k["left"], f"left: {k['left']}" if k["left"] else
                f"{len(k['held'])} processes gone")
    killed = sorted({rid for k in kills if not k.get("missed") for rid, _ in k["active"]})
    runs, claims = common_checks(api, names, load, chk, [a, b], killed=killed)
    stale, _ = explain_errored(runs, [a, b], excused=killed)
    others = [r for r in runs.values() if r["id"] not in killed and r["status"] != "applied"
              and not is_stale(r)]
    chk("every run not killed applied (stale plans aside)", not others,
        "; ".join(f"{r['ws']} #{r['number']} {r['status']}" for r in others[:10])
        or f"{len(runs) - len(killed) - len(stale)} applied, {len(stale)} stale")
    nf = sum(len(h) for h in followups)
    if settled:
        Checks.info("runs no client knew of, approved by the bench before the follow-ups",
                    ", ".join(settled))
    print(f"  follow-ups: {nf} run(s) in {len(followups)} round(s): "
          + "; ".join(", ".join(f"{w} {s}" for w, s in sorted(h.items())) for h in followups))
    converged = not followups or all(s == "applied" for s in followups[-1].values())
    chk("every workspace converged (its last run applied)", converged)
    print_load(args, load, runs, claims)


def mode_pg_restart(args, ctx, chk):
    names = [f"ws-{w}" for w in range(args.workspaces)]
    repo = make_repo(ctx.root, names, sleep=args.sleep, platform=args.platform)
    if args.store:
        die("--fault pg-restart restarts the bench's own PostgreSQL: no --store")
    store = ctx.postgres_store()
    lease = args.lease or "10s"
    serve = ctx.serve("server", ctx.root / "data", args.workers, lease=lease, store=store)
    # Longer than the store pool's own wait for a connection (30 s): a request it gives up
    # on is seen as its 500, not as the bench's timeout.
    api = Api([serve.base], timeout=60)
    create_workspaces(api, repo, names)
    print(f"bench/server.py --fault pg-restart: {args.runs} runs over {args.workspaces} "
          f"workspaces, {args.clients} clients, {args.workers} workers, lease {lease}, "
          f"outage {args.outage:g} s, Terraform {ctx.tf_version}, store PostgreSQL", flush=True)
    load = Load(api, names, args.runs, args.clients, time.time() + args.timeout,
                interval=args.interval if args.interval is not None else 8.0)
    outage = {}
    probes = []  # (sent, seconds, status) of GET /healthz, one every 0.25 s, each on its own

    def mark(text):
        with open(serve.log_path, "a") as f:
            f.write(f"--- bench: {text} at {time.time():.3f}\n")

    def probe():
        sent = time.time()
        code, _ = api.call("GET", "healthz")
        probes.append((sent, time.time() - sent, code))

    def fault():
        while len(load.results) < max(1, args.runs // 5) and any(
                t.is_alive() for t in load.threads[1:]):
            time.sleep(0.1)
        give_up = time.time() + 30
        while not terraform_processes(serve.pid) and time.time() < give_up:
            time.sleep(0.05)
        outage["in_flight"] = terraform_processes(serve.pid)
        stop_probes = threading.Event()

        def prober():
            while not stop_probes.is_set():
                threading.Thread(target=probe, daemon=True).start()
                time.sleep(0.25)

        pt = threading.Thread(target=prober, daemon=True)
        pt.start()
        time.sleep(0.5)
        mark("PostgreSQL stopping")
        outage["stop"] = time.time()
        ctx.pg.stop()
        outage["stopped"] = time.time()
        mark("PostgreSQL stopped")
        time.sleep(args.outage)
        outage["start"] = time.time()
        ctx.pg.start()
        outage["started"] = time.time()
        mark("PostgreSQL started")
        time.sleep(15)
        stop_probes.set()
        pt.join()

    load.start()
    ft = threading.Thread(target=fault, daemon=True)
    ft.start()
    load.join()
    ft.join(timeout=120)
    if "stop" not in outage:
        chk("PostgreSQL restarted under load", False, "the load ended first")
        return
    lease_s = parse_duration(lease)
    time.sleep(lease_s + 6)
    errored_before = {r for r, run in load.results.items() if run["status"] == "errored"}
    settled = settle(api, names, load, time.time() + args.timeout)
    followups = converge(api, names, time.time() + args.timeout, load)

    t0 = load.wall0
    down, back = outage["stopped"], outage["started"]
    print(f"  outage: PostgreSQL stopped at +{outage['stop'] - t0:.1f} s (down at "
          f"+{down - t0:.1f} s), started at +{outage['start'] - t0:.1f} s (up at "
          f"+{back - t0:.1f} s, unix ms {back * 1000:.0f}): down {back - down:.1f} s; terraform "
          f"running at the stop: " + ", ".join(f"{c} {r}" for _, c, r in outage["in_flight"]),
          flush=True)
    during = [p for p in probes if down <= p[0] <= back]
    ok_again = next((p for p in sorted(probes) if p[0] >= back and p[2] == 200), None)
    print(f"  /healthz probes (every 0.25 s, concurrent) sent while PostgreSQL was down: "
          f"{len(during)}, answers {sorted({str(p[2]) for p in during})}, slowest "
          f"{max((p[1] for p in during), default=0):.2f} s, the last answered "
          f"{max((p[0] + p[1] - back for p in during), default=0) + 0.0:+.1f} s from its return")
    chk("the server reconnects (/healthz ok again)", ok_again is not None,
        f"the first probe sent after PostgreSQL was up to get 200 was sent "
        f"{ok_again[0] - back:.2f} s after and answered in {ok_again[1]:.2f} s "
        f"(+{ok_again[0] + ok_again[1] - back:.1f} s)" if ok_again
        else f"last probes: {sorted(probes)[-3:]}")
    # Every call the bench sent while PostgreSQL was down (probes included).
    calls = [c for c in api.calls if outage["stop"] <= c[0] <= back]
    failed = [f for f in api.failures if outage["stop"] <= f.at <= back]
    by = {}
    for c in calls:
        key = "no answer" if c[2] is None else f"{c[2] // 100}xx"
        by[key] = by.get(key, 0) + 1
    late = [c for c in calls if c[0] + c[1] > back + 2]
    print(f"  requests sent while PostgreSQL was down: {len(calls)} ("
          + ", ".join(f"{k}: {v}" for k, v in sorted(by.items())) + f"); failed: {len(failed)} "
          f"({sum(1 for f in failed if f.json_error)} with a JSON error body, codes "
          f"{sorted({str(f.detail.get('code')) for f in failed if f.code and isinstance(f.detail, dict)})}); "
          f"slowest {max((c[1] for c in calls), default=0):.2f} s; {len(late)} answered more "
          f"than 2 s after PostgreSQL was up; queue requests retried: {load.queue_retries}, "
          f"given up: {load.queue_given_up}", flush=True)
    for c in sorted(calls, key=lambda c: -c[1])[:3]:
        print(f"      {c[3]} {c[4]}: {c[2]} after {c[1]:.2f} s (sent at +{c[0] - t0:.1f} s)")
    chk("every request sent during the outage got an HTTP answer (no hang)",
        all(c[2] is not None for c in calls),
        f"{sum(1 for c in calls if c[2] is None)} without one (client timeout {api.timeout} s)")
    answered = [f for f in failed if f.code]
    chk("failed requests that got an answer got a 5xx JSON error",
        all(f.json_error for f in answered),
        f"{len(answered)} such, {sum(1 for f in answered if not f.json_error)} without the JSON "
        f"error body")
    chk("no request held past PostgreSQL's return (+2 s)", not late,
        f"{len(late)} answered up to {max((c[0] + c[1] - back for c in late), default=0):.1f} s "
        f"after it was up (the store's pool waits out its reconnect backoff)" if late else "")
    after = [f for f in api.failures if f.at > back + 15]
    chk("no request failed 15 s after PostgreSQL was up", not after,
        "; ".join(f"{f.method} {f.path} {f.code}" for f in after[:5]))
    runs, claims = common_checks(api, names, load, chk, [serve])
    stale, other = explain_errored(runs, [serve])
    lost = [r for r in other if LEASE_REASON in (r.get("status_detail") or "")]

    def ran_out(r):
        m = re.search(r"ran out at (\d+) ms", r.get("status_detail") or "")
        return f"; its lease ran out {int(m.group(1)) / 1000 - back:+.1f} s from PostgreSQL's " \
            f"return" if m else ""
    chk("no run errored by its lease while its server lived (a report or a renewal lost to "
        "the outage)", not lost,
        "; ".join(f"{r['ws']} #{r['number']} {r['id']}{ran_out(r)}" for r in lost))
    reports = serve.log_lines("report:") + serve.log_lines("run log:")
    print(f"  server stderr: {len(serve.log_lines())} lines; store errors reporting runs "
          f"(finish_run/run log): {len(reports)}")
    for line in reports[:10]:
        print(f"      {line}")
    Checks.info("runs errored", f"{len(stale) + len(other)} ({len(stale)} by a stale plan, "
                f"{len(other)} otherwise; {len(errored_before)} of them in the load, the rest "
                f"follow-ups)")
    nf = sum(len(h) for h in followups)
    if settled:
        Checks.info("runs no client knew of, approved by the bench before the follow-ups",
                    ", ".join(settled))
    print(f"  follow-ups: {nf} run(s) in {len(followups)} round(s): "
          + "; ".join(", ".join(f"{w} {s}" for w, s in sorted(h.items())) for h in followups))
    converged = not followups or all(s == "applied" for s in followups[-1].values())
    chk("every workspace converged (its last run applied)", converged)
    print_load(args, load, runs, claims)


def mode_overhead(args, ctx, chk):
    name = "ovh"
    repo = make_repo(ctx.root, [name], platform=args.platform)
    serve = ctx.serve("server", ctx.root / "data", 1)
    api = Api([serve.base])
    create_workspaces(api, repo, [name])
    n = args.n
    print(f"bench/server.py --overhead: {n} runs each (after one warm-up), one workspace, one "
          f"worker, SQLite, sequential; Terraform {ctx.tf_version}", flush=True)
    env = dict(ctx.env)
    env.update({"TF_IN_AUTOMATION": "1", "TF_INPUT": "0"})
    for k in [k for k in env if k.startswith(("TF_CLI_ARGS", "TF_VAR_"))] + \
            ["TF_DATA_DIR", "TF_WORKSPACE", "PLATFORM_BROKER_HOME", "PLATFORM_POLICY",
             "PLATFORM_CATALOG", "PLATFORM_PRICEBOOK", "PLATFORM_BROKER_CONFIG"]:
        env.pop(k, None)

    def run(cmd, cwd, ok_codes=(0,)):
        r = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True)
        if r.returncode not in ok_codes:
            raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")

    prev = {"cli": None, "bare": None}

    def fresh(kind, i):
        d = ctx.root / f"{kind}-{i}"
        d.mkdir()
        (d / "main.tf").write_text(main_tf(0, f"bench_{kind}" if args.platform else None))
        if prev[kind]:
            shutil.copy(prev[kind] / "terraform.tfstate", d / "terraform.tfstate")
        prev[kind] = d
        return d

    phases = {}  # name -> [seconds]

    def timed(name, cmd, cwd, ok_codes=(0,)):
        t0 = time.perf_counter()
        run(cmd, cwd, ok_codes)
        phases.setdefault(name, []).append(time.perf_counter() - t0)

    def cli_once(i):
        d = fresh("cli", i)
        t0 = time.perf_counter()
        timed("cli plan", [str(ctx.broker), "--terraform", ctx.tf, "plan", str(d)], d, (0, 2))
        timed("cli apply", [str(ctx.broker), "--terraform", ctx.tf, "apply", "--dir", str(d)], d)
        return time.perf_counter() - t0

    def bare_once(i):
        d = fresh("bare", i)
        t0 = time.perf_counter()
        timed("terraform init", [ctx.tf, "init", "-input=false", "-no-color"], d)
        timed("terraform plan -out", [ctx.tf, "plan", "-input=false", "-no-color",
                                      "-out=plan.tfplan"], d)
        timed("terraform apply PLAN", [ctx.tf, "apply", "-input=false", "-no-color",
                                       "plan.tfplan"], d)
        return time.perf_counter() - t0

    def server_once(i):
        t0 = time.perf_counter()
        code, queued = api.call("POST", f"v1/workspaces/{name}/runs", user="dev")
        if code != 202:
            raise RuntimeError(f"queue: {code} {queued}")
        rid = queued["id"]
        while True:
            code, r = api.call("GET", f"v1/runs/{rid}")
            if r["status"] in WAITING:
                code, r = api.call("POST", f"v1/runs/{rid}/approve", user="reviewer",
                                   body={"reason": "bench"})
            if r["status"] in FINAL:
                break
            time.sleep(0.02)
        if r["status"] != "applied":
            raise RuntimeError(f"server run {rid} {r['status']}: {r.get('status_detail')}")
        return rid, time.perf_counter() - t0

    kinds = ["server", "cli", "bare"]
    times = {k: [] for k in kinds}
    ids = []
    for i in range(n + 1):
        order = kinds[i % 3:] + kinds[:i % 3]
        for k in order:
            if k == "server":
                rid, wall = server_once(i)
                if i:
                    ids.append((rid, wall))
            elif k == "cli":
                dt = cli_once(i)
                if i:
                    times["cli"].append(dt)
            else:
                dt = bare_once(i)
                if i:
                    times["bare"].append(dt)
    claims = Claims(audit_events(api))
    walls = []
    for rid, wall in ids:
        t = claims.times
        times["server"].append((t[(rid, "planned")] - t[(rid, "queued")])
                               + (t[(rid, "applied")] - t[(rid, "approved")]))
        walls.append(wall)
        for name, a, b in (("server claim to plan (queued->planning)", "queued", "planning"),
                           ("server plan (planning->planned)", "planning", "planned"),
                           ("server claim to apply (approved->applying)", "approved", "applying"),
                           ("server apply (applying->applied)", "applying", "applied")):
            phases.setdefault(name, []).append(t[(rid, b)] - t[(rid, a)])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"  {'':<62} {'median':>8} {'min':>8} {'max':>8}")
    rows = [("server (queued->planned + approved->applied, audit times)", "server"),
            ("local broker CLI (plan + apply, local backend)", "cli"),
            ("bare terraform (init + plan -out + apply PLAN)", "bare")]
    for label, k in rows:
        print(f"  {label:<62} {med[k]:8.2f} {min(times[k]):8.2f} {max(times[k]):8.2f}  s")
    print(f"  {'(server, client wall clock incl. approval round trip)':<62} "
          f"{statistics.median(walls):8.2f}")
    print("  phases (medians): " + ", ".join(
        f"{k} {statistics.median(v) * 1000:.0f} ms" for k, v in phases.items()))
    print(f"  ratios: server/CLI {med['server'] / med['cli']:.2f}, server/terraform "
          f"{med['server'] / med['bare']:.2f}, CLI/terraform {med['cli'] / med['bare']:.2f}")
    own = med["server"] - med["cli"]
    share = own / med["bare"] * 100
    print(f"  the server's own overhead (server - CLI): {own * 1000:.0f} ms per run = "
          f"{share:.1f}% of terraform's time; server + broker over bare terraform: "
          f"{(med['server'] - med['bare']) * 1000:.0f} ms = "
          f"{(med['server'] - med['bare']) / med['bare'] * 100:.1f}%")
    if own > 0:
        print(f"  at this fixed cost the 5% target holds for runs whose terraform time is at "
              f"least {own / 0.05:.1f} s")
    chk("every server run applied", len(times["server"]) == n)
    code, report = api.call("GET", "v1/audit/verify")
    chk("audit chain verifies", code == 200 and report.get("ok"), f"{report.get('events')} events")
    Checks.target("the server's own overhead < 5% of terraform's time", share < 5,
                  f"{share:.1f}%")


def parse_duration(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    if not m:
        die(f"cannot read the duration {text!r} (e.g. 6s)")
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


# --------------------------------------------------------------------------- main


class Context:
    """What every mode shares; `close` stops everything it started."""

    def __init__(self, args, root, broker, tf, env):
        self.args, self.root, self.broker, self.tf, self.env = args, root, broker, tf, env
        self.tf_version = common.tf_version(tf)
        self.serves = []
        self.pg = None

    def serve(self, label, data_dir, workers, lease=None, store=None):
        s = Serve(label, self.broker, self.tf, data_dir, self.env,
                  self.root / f"serve-{label}.log", workers, lease, store)
        s.data_dir = data_dir
        self.serves.append(s)
        return s.start()

    def postgres_store(self):
        if self.args.store:
            return self.args.store
        if not self.pg:  # --platform started it already
            self.pg = Postgres(self.root / "pg")
            self.pg.start()
        self.pg.psql("CREATE DATABASE bench_server")
        return self.pg.url("bench_server")

    def close(self):
        for s in self.serves:
            s.stop()
        if self.pg:
            self.pg.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, help="default 200; 60 with --fault")
    ap.add_argument("--workspaces", type=int, help="default 20; 10 with --fault")
    ap.add_argument("--clients", type=int, default=None, help="default 50; 20 with --fault")
    ap.add_argument("--workers", type=int, default=None,
                    help="per server (default 4; 2 with --fault kill9)")
    ap.add_argument("--store", help="postgres://... (default: SQLite in the data directory; "
                    "with --fault: a fresh database on the bench's own PostgreSQL)")
    ap.add_argument("--fault", choices=["kill9", "pg-restart"])
    ap.add_argument("--lease", help="serve --lease with --fault (default 6s kill9, 10s pg-restart)")
    ap.add_argument("--down", type=float, default=1.0,
                    help="kill9: seconds between the kill and the restart (default 1)")
    ap.add_argument("--outage", type=float, default=5.0,
                    help="pg-restart: seconds PostgreSQL stays down (default 5)")
    ap.add_argument("--sleep", type=int, default=0,
                    help="with --fault: a local-exec `sleep N` in every apply (default 0)")
    ap.add_argument("--interval", type=float,
                    help="seconds between one client's queue requests (default 0; 8 with "
                    "--fault pg-restart, so that queueing goes on through the outage)")
    ap.add_argument("--overhead", action="store_true")
    ap.add_argument("--platform", action="store_true",
                    help="every workspace also holds a platform_postgres_database (the platform "
                    "provider, built unless --provider, against a PostgreSQL of the bench's own)")
    ap.add_argument("--provider", type=Path,
                    help="with --platform: this terraform-provider-platform binary (no build)")
    ap.add_argument("-n", type=int, default=10, help="--overhead: runs of each (default 10)")
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds the runs get to end (default 600)")
    ap.add_argument("--tf", help="terraform binary (default: the first of PATH, .tools' 1.0.3)")
    ap.add_argument("--broker", type=Path, help="this platform-broker binary (no cargo build)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    if args.fault and args.overhead:
        die("--fault and --overhead do not combine")
    fault = bool(args.fault)
    args.runs = args.runs or (60 if fault else 200)
    args.workspaces = args.workspaces or (10 if fault else 20)
    args.clients = args.clients or (20 if fault else 50)
    args.workers = args.workers or (2 if args.fault == "kill9" else 4)

    tools = common.load_tools_env()
    tf = args.tf or str(common.terraform_bins(tools)[0])
    null_mirror = tools.get("NULL_MIRROR") or die("no NULL_MIRROR: run scripts/setup first")
    target = Path(os.environ.get("CARGO_TARGET_DIR") or (REPO / "target")) / "release"
    packages = [p for p, given in (("platform-broker", args.broker),
                                   ("terraform-provider-platform",
                                    args.provider or not args.platform)) if not given]
    if packages:
        log(f"bench: cargo build --release {' '.join(packages)} ...")
        subprocess.run(["cargo", "build", "--release", "--locked", "-q"]
                       + [a for p in packages for a in ("-p", p)], cwd=REPO, check=True)
    broker = args.broker.resolve() if args.broker else target / "platform-broker"
    provider = (args.provider or target / "terraform-provider-platform").resolve()

    root = Path(tempfile.mkdtemp(prefix="bench-server-"))
    root.chmod(0o755)  # scripts/pg runs PostgreSQL as its own OS user under root
    env = dict(os.environ, CHECKPOINT_DISABLE="1")
    for k in ("PLATFORM_BROKER_KEY", "PLATFORM_STORE", "PLATFORM_DATA_DIR", "TF_LOG",
              "PLATFORM_CATALOG", "TF_PLUGIN_CACHE_DIR"):
        env.pop(k, None)
    if args.platform:
        from broker import mirror_config  # bench/broker.py: both providers from mirrors
        env["TF_CLI_CONFIG_FILE"] = str(mirror_config(root, "cli", provider, null_mirror))
    else:
        cli = root / "cli.tfrc"
        cli.write_text(f'provider_installation {{\n  filesystem_mirror {{\n'
                       f'    path = "{null_mirror}"\n  }}\n}}\n')
        env["TF_CLI_CONFIG_FILE"] = str(cli)
    ctx = Context(args, root, broker, tf, env)
    chk = Checks()
    try:
        if args.platform:
            # The provider's PostgreSQL (PG* in terraform's environment): the bench's own
            # cluster, also the store with --fault.
            ctx.pg = Postgres(root / "pg")
            ctx.pg.start()
            env.update({k: v for k, v in ctx.pg.env.items() if k.startswith("PG")})
        if args.overhead:
            mode_overhead(args, ctx, chk)
        elif args.fault == "kill9":
            mode_kill9(args, ctx, chk)
        elif args.fault == "pg-restart":
            mode_pg_restart(args, ctx, chk)
        else:
            mode_load(args, ctx, chk)
        print(f"  {'FAILED: ' + ', '.join(chk.failures) if chk.failed else 'all checks passed'}",
              flush=True)
        return 1 if chk.failed else 0
    finally:
        ctx.close()
        if args.keep:
            log(f"bench: kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

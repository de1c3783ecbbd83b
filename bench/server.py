#!/usr/bin/env python3
"""Load on the control plane: many clients queue runs across workspaces of one server.

    python3 bench/server.py                              # 200 runs, 20 workspaces, 50 clients, 4 workers
    python3 bench/server.py --runs 500 --workers 8
    python3 bench/server.py --store postgres://...       # the shared store instead of SQLite

It builds the release broker, starts `platform-broker serve` (--insecure-dev-auth on loopback)
on a throwaway data directory, makes a git repository with one Terraform directory per
workspace (a null_resource whose trigger changes every run, hashicorp/null from the test
mirror), and creates the workspaces. Then CLIENTS threads queue the runs (round robin over
the workspaces), approve each one as another user once it is planned, and wait for every
run to end; meanwhile a reader thread times `GET /v1/workspaces/NAME/runs` over and over.

It prints: runs queued / ended / by final status; whether every run was claimed exactly once
(one `run.planning` and one `run.applying` audit event each) and each workspace's runs were
claimed in queue order; runs per minute; the reads' p50/p99 latency while runs execute; the
queue wait (queued -> claimed) p50/p95; and whether the audit chain verifies.
Targets (issue 16): p99 of reads < 50 ms while runs execute.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import schema as common  # noqa: E402  (bench/schema.py: tools env, terraform bins, build)

REPO = common.REPO
log, die = common.log, common.die


def request(base, method, path, user="bench", body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("x-platform-dev-user", user)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--workspaces", type=int, default=20)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--store", help="postgres://... (default: SQLite in the data directory)")
    ap.add_argument("--tf", help="terraform binary (default: the first of PATH, .tools' 1.0.3)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()

    tools = common.load_tools_env()
    tf = args.tf or str(common.terraform_bins(tools)[0])
    null_mirror = tools.get("NULL_MIRROR") or die("no NULL_MIRROR: run scripts/setup first")
    log("bench: cargo build --release -p platform-broker ...")
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "platform-broker"],
                   cwd=REPO, check=True)
    broker = REPO / "target" / "release" / "platform-broker"

    root = Path(tempfile.mkdtemp(prefix="bench-server-"))
    server = None
    try:
        repo = root / "repo"
        for w in range(args.workspaces):
            d = repo / f"ws-{w}"
            d.mkdir(parents=True)
            (d / "main.tf").write_text(
                'terraform {\n  required_providers {\n'
                '    null = { source = "hashicorp/null", version = "2.1.2" }\n  }\n}\n'
                'resource "null_resource" "r" {\n  triggers = { t = timestamp() }\n}\n')
        git = ["git", "-C", str(repo), "-c", "user.email=b@localhost", "-c", "user.name=b"]
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        subprocess.run(git + ["add", "."], check=True)
        subprocess.run(git + ["commit", "-qm", "bench"], check=True)
        cli = root / "cli.tfrc"
        cli.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{null_mirror}"\n  }}\n}}\n')

        cmd = [str(broker), "--terraform", tf, "serve", "--listen", "127.0.0.1:0",
               "--insecure-dev-auth", "--data-dir", str(root / "data"),
               "--workers", str(args.workers)]
        if args.store:
            cmd += ["--store", args.store]
        env = dict(os.environ, TF_CLI_CONFIG_FILE=str(cli), CHECKPOINT_DISABLE="1")
        env.pop("PLATFORM_BROKER_KEY", None)
        server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(root / "serve.log", "w"),
                                  env=env, text=True)
        first = server.stdout.readline()
        base = next((w for w in first.split() if w.startswith("http://")), None)
        if not base:
            die(f"serve did not start: {first}\n{(root / 'serve.log').read_text()}")

        names = [f"ws-{w}" for w in range(args.workspaces)]
        for name in names:
            code, doc = request(base, "POST", "v1/workspaces", body={
                "name": name, "team": "bench", "environment": "dev",
                "source": {"kind": "git", "url": f"file://{repo}", "path": name}})
            if code != 201:
                die(f"create {name}: {code} {doc}")

        print(f"bench/server.py: {args.runs} runs over {args.workspaces} workspaces, "
              f"{args.clients} clients, {args.workers} workers, Terraform {common.tf_version(tf)}, "
              f"store {'PostgreSQL' if args.store else 'SQLite'}")
        stop = threading.Event()
        read_ms = []

        def reader():
            i = 0
            while not stop.is_set():
                t0 = time.perf_counter()
                code, _ = request(base, "GET", f"v1/workspaces/{names[i % len(names)]}/runs")
                read_ms.append((time.perf_counter() - t0) * 1e3)
                if code != 200:
                    print(f"  read failed: {code}", flush=True)
                i += 1
                time.sleep(0.02)

        results = {}
        lock = threading.Lock()
        counter = iter(range(args.runs))
        counter_lock = threading.Lock()

        def client(c):
            mine = []
            while True:
                with counter_lock:
                    n = next(counter, None)
                if n is None:
                    break
                code, run = request(base, "POST", f"v1/workspaces/{names[n % len(names)]}/runs",
                                    user=f"dev{c}")
                if code != 202:
                    print(f"  queue failed: {code} {run}", flush=True)
                    continue
                mine.append(run["id"])
            pending = set(mine)
            while pending:
                for rid in list(pending):
                    code, run = request(base, "GET", f"v1/runs/{rid}", user=f"dev{c}")
                    status = run.get("status") if code == 200 else None
                    if status in ("planned", "needs_approval"):
                        request(base, "POST", f"v1/runs/{rid}/approve", user=f"reviewer{c}",
                                body={"reason": "bench"})
                    elif status in ("applied", "errored", "denied", "discarded", "expired"):
                        pending.discard(rid)
                        with lock:
                            results[rid] = run
                time.sleep(0.2)

        rt = threading.Thread(target=reader, daemon=True)
        t0 = time.perf_counter()
        rt.start()
        clients = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        elapsed = time.perf_counter() - t0
        stop.set()
        rt.join()

        by_status = {}
        for run in results.values():
            by_status[run["status"]] = by_status.get(run["status"], 0) + 1
        # Exactly once and in order, from the audit chain.
        events, after = [], 0
        while True:
            code, page = request(base, "GET", f"v1/audit/events?after={after}&limit=1000")
            events += [json.loads(line) for line in page["events"]]
            if not page.get("next"):
                break
            after = page["next"]
        planning, applying, queued_at, claimed_at = {}, {}, {}, {}
        order = {}
        for e in events:
            t = e["type"].rsplit(".", 1)[-1]
            data = e.get("data", {})
            rid = data.get("run")
            if not rid:
                continue
            ts = e["time"]
            if t == "queued":
                queued_at[rid] = ts
            elif t == "planning":
                planning[rid] = planning.get(rid, 0) + 1
                claimed_at[rid] = ts
                order.setdefault(e.get("subject"), []).append(data.get("number"))
            elif t == "applying":
                applying[rid] = applying.get(rid, 0) + 1
        once = all(planning.get(r) == 1 for r in results) and \
            all(applying.get(r, 0) <= 1 for r in results)
        in_order = all(nums == sorted(nums) for nums in order.values())

        def parse(ts):
            from datetime import datetime
            return datetime.fromisoformat(ts.replace("Z", "+00:00")[:26] + "+00:00"
                                          if "." in ts else ts.replace("Z", "+00:00")).timestamp()
        waits = [parse(claimed_at[r]) - parse(queued_at[r]) for r in results
                 if r in claimed_at and r in queued_at]
        code, report = request(base, "GET", "v1/audit/verify")
        print(f"  runs: queued {args.runs}, ended {len(results)}, "
              + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())))
        print(f"  claimed exactly once: {'yes' if once else 'NO'}; per-workspace order kept: "
              f"{'yes' if in_order else 'NO'}; audit chain: "
              f"{'intact' if report.get('ok') else 'BROKEN'} ({report.get('events')} events)")
        print(f"  throughput: {len(results) / elapsed * 60:.1f} runs/minute ({elapsed:.1f} s)")
        print(f"  GET /v1/workspaces/NAME/runs while runs execute: n={len(read_ms)} "
              f"p50 {statistics.median(read_ms):.1f} ms, p99 {percentile(read_ms, 99):.1f} ms "
              f"(target p99 < 50 ms: {'MET' if percentile(read_ms, 99) < 50 else 'NOT MET'})")
        if waits:
            print(f"  queue wait (queued -> claimed): p50 {statistics.median(waits):.1f} s, "
                  f"p95 {percentile(waits, 95):.1f} s")
        ok = len(results) == args.runs and once and in_order and report.get("ok")
        return 0 if ok else 1
    finally:
        if server:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if args.keep:
            log(f"bench: kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark `terraform providers schema -json`: our provider vs hashicorp/null 2.1.2.

One command (Python 3 stdlib only):

    python3 bench/schema.py              # builds the release provider, measures both
    python3 bench/schema.py --null-only  # only the hashicorp/null half (no cargo build)

For each available Terraform binary (the one on PATH, if any, and .tools' 1.0.3)
it runs, in the same run and interleaved (ours, null, null, ours, ...), N
repetitions (default 15, after one warm-up each) of `terraform providers schema -json`:

  (a) ours: terraform-provider-platform via dev_overrides, PLATFORM_CATALOG set to a
      generated catalog of 50 offerings (4 inputs, 2 tiers, 1 compose primitive each);
  (b) null: hashicorp/null 2.1.2 from the filesystem mirror, after an offline `terraform init`;

and prints median / p90 / min wall time and the ratio ours/null. If the provider
prints a go-plugin handshake line, it also measures process start -> handshake line
(TF_PLUGIN_MAGIC_COOKIE + PLUGIN_PROTOCOL_VERSIONS=6, first stdout line, then kill),
with null (protocol 5) alongside for reference; with `openssl` present, also with a
PLUGIN_CLIENT_CERT (AutoMTLS, as Terraform does by default).

Finally (unless --null-only) it builds and runs `platform-bench schema` (bench/rust):
process start -> handshake -> TLS (AutoMTLS) -> GetProviderSchema (null: GetSchema)
-> Shutdown -> exit, exactly as Terraform's go-plugin client does it but without
Terraform, --direct-n repetitions (default 30) interleaved with null, same catalog.
Its start -> schema ratio is the issue's target (ours <= 0.5 x null).

Noise between runs is about +-25% on a shared machine: compare the ratios, which
are measured side by side, rather than absolute numbers across runs.
"""

import argparse
import json
import math
import os
import select
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"
NULL_REL = "registry.terraform.io/hashicorp/null/2.1.2/linux_amd64/terraform-provider-null_v2.1.2_x4"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def die(msg):
    log(f"bench: ERROR: {msg}")
    sys.exit(1)


# --------------------------------------------------------------------------- setup


def load_tools_env():
    r = subprocess.run(["bash", str(REPO / "scripts" / "setup")])
    if r.returncode != 0:
        die("scripts/setup failed")
    env = {}
    for line in (REPO / ".tools" / "env").read_text().splitlines():
        line = line.strip()
        if line.startswith("export "):
            k, _, v = line[len("export "):].partition("=")
            vals = shlex.split(v) if v else [""]
            env[k] = vals[0] if vals else ""
    return env


def terraform_bins(tools):
    bins = []
    if tools.get("TF_ON_PATH"):
        bins.append(tools["TF_ON_PATH"])
    bins.append(tools["TF_103"])
    return bins


def tf_version(binary):
    r = subprocess.run([binary, "version"], capture_output=True, text=True,
                       env=base_env(None))
    first = (r.stdout.splitlines() or ["?"])[0]
    return first.replace("Terraform ", "")


def build_provider():
    target = Path(os.environ.get("CARGO_TARGET_DIR") or (REPO / "target"))
    binary = target / "release" / "terraform-provider-platform"
    log("bench: cargo build --release -p terraform-provider-platform ...")
    r = subprocess.run(["cargo", "build", "--release", "--locked", "-p",
                        "terraform-provider-platform"], cwd=REPO)
    if r.returncode != 0:
        die("cargo build failed (use --null-only to measure hashicorp/null alone)")
    if not binary.is_file():
        die(f"{binary} not found after the build")
    return binary


# --------------------------------------------------------------------------- catalog


def offering_hcl(i):
    return f'''offering "svc_{i:03d}" {{
  title       = "Service {i}"
  description = "Generated offering {i}."
  owner {{
    team = "team-{i}"
  }}
  version "1.0.0" {{
    status = "current"
    input "name" {{
      type      = string
      pattern   = "^[a-z][a-z0-9_]{{2,40}}$"
      on_change = "replace"
    }}
    input "size" {{
      type    = number
      default = 10
      min     = 1
      max     = 1000
    }}
    input "flags" {{
      type    = set(string)
      default = []
      enum    = ["a", "b", "c"]
    }}
    input "note" {{
      type    = string
      default = "none"
    }}
    tier "small" {{
      price {{
        amount = 10
        unit   = "month"
      }}
      values = {{
        max_connections = 10
      }}
    }}
    tier "large" {{
      price {{
        amount = 90
        unit   = "month"
      }}
      values = {{
        max_connections = 100
      }}
    }}
    compose {{
      primitive "role" {{
        driver = "postgres.role"
        inputs = {{
          name             = "${{input.name}}_owner"
          connection_limit = tier.values.max_connections
        }}
      }}
    }}
  }}
}}
'''


def generate_catalog(directory, count):
    directory.mkdir(parents=True, exist_ok=True)
    parts = ['catalog {\n  provider_prefix = "platform"\n}\n']
    parts += [offering_hcl(i) for i in range(1, count + 1)]
    (directory / "catalog.hcl").write_text("\n".join(parts))
    return directory


# --------------------------------------------------------------------------- terraform


def base_env(cli_config, extra=None):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("TF_CLI_ARGS", "TF_VAR_")) or k in (
                "TF_DATA_DIR", "TF_WORKSPACE", "TF_PLUGIN_CACHE_DIR",
                "TF_REATTACH_PROVIDERS", "TF_LOG", "TF_LOG_PATH", "PLATFORM_CATALOG"):
            del env[k]
    env.update({
        "TF_CLI_CONFIG_FILE": str(cli_config) if cli_config else os.devnull,
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "TF_INPUT": "0",
        "NO_COLOR": "1",
    })
    env.update(extra or {})
    return env


class Case:
    """One Terraform working directory + CLI config."""

    def __init__(self, name, workdir, cli_config, env_extra=None):
        self.name = name
        self.workdir = workdir
        self.cli_config = cli_config
        self.env = base_env(cli_config, env_extra)

    def run(self, binary, args, check=True):
        t0 = time.perf_counter()
        r = subprocess.run([binary, *args], cwd=self.workdir, env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if check and r.returncode != 0:
            raise RuntimeError(f"[{self.name}] {binary} {' '.join(args)} failed "
                               f"(exit {r.returncode}):\n{r.stdout}\n{r.stderr}")
        return dt, r


def make_ours(root, provider, catalog):
    work = root / "ours"
    work.mkdir()
    (work / "main.tf").write_text(
        'terraform {\n  required_providers {\n'
        '    platform = { source = "platform/platform" }\n  }\n}\n')
    cli = root / "ours.tfrc"
    cli.write_text(
        'disable_checkpoint = true\n'
        'provider_installation {\n'
        f'  dev_overrides {{\n    "platform/platform" = "{provider.parent}"\n  }}\n'
        '  direct {}\n'
        '}\n')
    return Case("ours", work, cli, {"PLATFORM_CATALOG": str(catalog)})


def make_null(root, null_mirror, tag):
    work = root / f"null-{tag}"
    work.mkdir()
    (work / "main.tf").write_text(
        'terraform {\n  required_providers {\n'
        '    null = { source = "hashicorp/null", version = "2.1.2" }\n  }\n}\n')
    cli = root / "null.tfrc"
    cli.write_text(
        'disable_checkpoint = true\n'
        'provider_installation {\n'
        f'  filesystem_mirror {{\n    path    = "{null_mirror}"\n'
        '    include = ["registry.terraform.io/hashicorp/null"]\n  }\n'
        '}\n')
    return Case("null", work, cli)


# --------------------------------------------------------------------------- stats


def p90(xs):
    s = sorted(xs)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def fmt_ms(x):
    return f"{x * 1000:8.1f}"


def row(label, xs):
    return (f"  {label:<34} {fmt_ms(statistics.median(xs))} {fmt_ms(p90(xs))} "
            f"{fmt_ms(min(xs))}   n={len(xs)}")


HEADER = f"  {'':<34} {'median':>8} {'p90':>8} {'min':>8}   (ms)"


# --------------------------------------------------------------------------- handshake


def handshake_once(binary, env, timeout=10.0):
    """Seconds from spawn to the first stdout line, and that line (None on failure)."""
    t0 = time.perf_counter()
    p = subprocess.Popen([str(binary)], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = b""
    try:
        fd = p.stdout.fileno()
        while not line.endswith(b"\n"):
            left = timeout - (time.perf_counter() - t0)
            if left <= 0:
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            line += chunk
        dt = time.perf_counter() - t0
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()
    text = line.split(b"\n", 1)[0].decode(errors="replace").strip()
    return dt, (text if line.endswith(b"\n") or b"\n" in line else None)


# Killed plugins leave their unix sockets behind: give them a private TMPDIR
# (set in main) that is removed with the bench's temp dir.
SOCKET_TMPDIR = None


def handshake_env(protocols, catalog=None, client_cert=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TF_", "PLUGIN_")) and k != "PLATFORM_CATALOG"}
    if SOCKET_TMPDIR:
        env["TMPDIR"] = str(SOCKET_TMPDIR)
    env.update({"TF_PLUGIN_MAGIC_COOKIE": COOKIE, "PLUGIN_PROTOCOL_VERSIONS": protocols,
                "PLUGIN_MIN_PORT": "10000", "PLUGIN_MAX_PORT": "25000"})
    if catalog:
        env["PLATFORM_CATALOG"] = str(catalog)
    if client_cert:
        env["PLUGIN_CLIENT_CERT"] = client_cert
    return env


def make_client_cert(root):
    """A self-signed P-521 client cert like go-plugin's AutoMTLS, if openssl exists."""
    if not shutil.which("openssl"):
        return None
    key, crt = root / "client.key", root / "client.crt"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-521", "-nodes", "-keyout", str(key),
                        "-out", str(crt), "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost"],
                       capture_output=True)
    return crt.read_text() if r.returncode == 0 else None


def bench_handshake(n, provider, catalog, null_bin, client_cert):
    variants = [("null  (proto 5, plaintext)", null_bin, handshake_env("5"))]
    if client_cert:
        variants.append(("null  (proto 5, client cert)", null_bin,
                         handshake_env("5", client_cert=client_cert)))
    if provider:
        ours_plain = ("ours  (proto 6, plaintext)", provider, handshake_env("6", catalog))
        dt, line = handshake_once(provider, ours_plain[2])
        if line and line.startswith("1|6|"):
            variants.insert(0, ours_plain)
            if client_cert:
                variants.insert(1, ("ours  (proto 6, client cert)", provider,
                                    handshake_env("6", catalog, client_cert)))
        else:
            log(f"bench: provider printed no handshake line ({line!r}); skipping ours")
    for _, b, env in variants:  # warm-up (page cache)
        handshake_once(b, env)
    times = {label: [] for label, _, _ in variants}
    lines = {}
    for i in range(n):
        order = variants if i % 2 == 0 else list(reversed(variants))
        for label, b, env in order:
            dt, line = handshake_once(b, env)
            if line is None:
                die(f"{label}: no handshake line within 10 s")
            times[label].append(dt)
            lines[label] = line
    print("\nprocess start -> handshake line (no Terraform)")
    print(HEADER)
    for label, _, _ in variants:
        print(row(label, times[label]))
    for label, _, _ in variants:
        parts = lines[label].split("|")
        shown = "|".join(parts[:5]) + ("|<cert>" if len(parts) > 5 and parts[5] else "|")
        print(f"  {label}: {shown}")


# --------------------------------------------------------------------------- direct (platform-bench)


def build_bench():
    target = Path(os.environ.get("CARGO_TARGET_DIR") or (REPO / "target"))
    binary = target / "release" / "platform-bench"
    log("bench: cargo build --release -p platform-bench ...")
    r = subprocess.run(["cargo", "build", "--release", "-p", "platform-bench"], cwd=REPO)
    if r.returncode != 0 or not binary.is_file():
        log("bench: building platform-bench failed")
        return None
    return binary


def bench_direct(n, provider, catalog, null_bin, root):
    """Runs `platform-bench schema`; returns its JSON result, or None on failure."""
    binary = build_bench()
    if binary is None:
        return None
    out = root / "direct.json"
    print("", flush=True)
    r = subprocess.run([str(binary), "schema", "--ours", str(provider), "--null", str(null_bin),
                        "--catalog", str(catalog), "-n", str(n), "--json", str(out)],
                       cwd=REPO, stdin=subprocess.DEVNULL)
    sys.stdout.flush()
    if r.returncode != 0 or not out.is_file():
        log(f"bench: platform-bench schema failed (exit {r.returncode})")
        return None
    return json.loads(out.read_text())


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=15, help="repetitions per case (default 15)")
    ap.add_argument("--offerings", type=int, default=50, help="generated offerings (default 50)")
    ap.add_argument("--null-only", action="store_true",
                    help="skip building/measuring our provider")
    ap.add_argument("--provider", type=Path,
                    help="use this provider binary instead of building target/release")
    ap.add_argument("--direct-n", type=int, default=30,
                    help="repetitions of the direct (no Terraform) measurement (default 30)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()

    tools = load_tools_env()
    bins = terraform_bins(tools)
    null_mirror = Path(tools["NULL_MIRROR"])
    null_bin = null_mirror / NULL_REL

    provider = None
    if not args.null_only:
        provider = args.provider.resolve() if args.provider else build_provider()

    root = Path(tempfile.mkdtemp(prefix="bench-schema-"))
    try:
        global SOCKET_TMPDIR
        SOCKET_TMPDIR = root / "sockets"
        SOCKET_TMPDIR.mkdir()
        catalog = generate_catalog(root / "catalog", args.offerings)
        client_cert = make_client_cert(root)
        print(f"bench/schema.py: `terraform providers schema -json`, n={args.n} each, "
              f"interleaved; catalog: {args.offerings} offerings")
        if provider:
            print(f"  provider: {provider}")
        print(f"  null:     {null_bin}")
        summary = []
        for bi, binary in enumerate(bins):
            version = tf_version(binary)
            (root / f"tf{bi}").mkdir()
            cases = [make_ours(root / f"tf{bi}", provider, catalog)] if provider else []
            null_case = make_null(root / f"tf{bi}", null_mirror, bi)
            null_case.run(binary, ["init", "-no-color", "-input=false"])
            cases.append(null_case)

            ok = []
            for c in cases:  # warm-up, and check the command works at all
                try:
                    c.run(binary, ["providers", "schema", "-json"])
                    ok.append(c)
                except RuntimeError as e:
                    log(f"bench: {c.name} fails under Terraform {version}; not measured:\n{e}")
            times = {c.name: [] for c in ok}
            for i in range(args.n):
                for c in (ok if i % 2 == 0 else list(reversed(ok))):
                    dt, _ = c.run(binary, ["providers", "schema", "-json"])
                    times[c.name].append(dt)

            print(f"\nTerraform {version} ({binary})")
            print(HEADER)
            for c in ok:
                print(row(f"{c.name}: providers schema -json", times[c.name]))
            if "ours" in times and "null" in times:
                ratio = statistics.median(times["ours"]) / statistics.median(times["null"])
                print(f"  ratio ours/null (medians): {ratio:.2f}")
                summary.append((version, ratio))
            elif provider:
                summary.append((version, None))

        bench_handshake(args.n, provider, catalog, null_bin, client_cert)

        direct_failed = False
        parts = []
        for v, r in summary:
            parts.append(f"TF {v}: ours/null = {r:.2f}" if r is not None
                         else f"TF {v}: ours failed")
        if provider:
            direct = bench_direct(args.direct_n, provider, catalog, null_bin, root)
            if direct is None:
                direct_failed = True
                parts.append("direct: platform-bench failed")
            else:
                ph = direct["phases"]
                parts.append(
                    f"direct start->schema: ours/null = {ph['start -> schema']['ratio']:.2f} "
                    f"(start->exit {ph['start -> exit']['ratio']:.2f}; target <= 0.50)")
        if parts:
            print("\nsummary: " + ", ".join(parts))
        if any(r is None for _, r in summary) or direct_failed:
            return 1
        return 0
    finally:
        if args.keep:
            log(f"bench: kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

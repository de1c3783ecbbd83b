#!/usr/bin/env python3
"""Benchmark catalog loading: is it linear in the number of offerings?

One command (Python 3 stdlib only):

    python3 bench/catalog_load.py                 # builds the release harness, runs every case
    python3 bench/catalog_load.py --sizes 1000,2000 --reps 1 --no-diags

It generates single-file catalogs of 1k, 2k, 4k, 8k and 16k offerings, copies of the three
offerings of examples/catalogs/postgres.hcl (same blocks, attributes and references; only
the offering names differ), and loads each with `catalog/examples/catalog_load.rs` built in
release mode (`platform_catalog::load_dir`, then Display of every diagnostic). It prints the
best-of-N load time per size and the ratio time(2n)/time(n): about 2 means linear, about 4
quadratic.

The diagnostics case is a catalog of 10,000 such offerings with ten unknown attributes each,
i.e. 100,000 diagnostics; it prints the load time and the time to format every diagnostic.
Targets (issue 13 item 5): 12,000 offerings (about 5 MB) load in under 2 s; 100,000
diagnostics print in under 2 s.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "examples" / "catalogs" / "postgres.hcl"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def offering_templates():
    """The offering blocks of postgres.hcl, as text with the name replaced by {name}."""
    text = TEMPLATE.read_text()
    starts = [m.start() for m in re.finditer(r'^offering "', text, re.M)]
    blocks = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        block = text[start:end].rstrip() + "\n\n"
        block = re.sub(r'^offering "[a-z_]+"', 'offering "{name}"', block, count=1)
        blocks.append(block)
    if not blocks:
        sys.exit("bench: no offering blocks in " + str(TEMPLATE))
    return blocks


def generate(path, n, errors_per_offering=0):
    templates = offering_templates()
    bad = "".join(f"  bogus_{k} = {k}\n" for k in range(errors_per_offering))
    parts = ['catalog {\n  provider_prefix = "platform"\n}\n\n']
    for i in range(n):
        block = templates[i % len(templates)].replace("{name}", f"offering_{i:06d}", 1)
        if bad:
            # After the opening line, so the errors are spread through the file.
            head, rest = block.split("\n", 1)
            block = head + "\n" + bad + rest
        parts.append(block)
    path.write_text("".join(parts))
    return path.stat().st_size


def build():
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", str(REPO / "target"))
    cmd = ["cargo", "build", "--release", "-q", "-p", "platform-catalog", "--example", "catalog_load"]
    log("bench: " + " ".join(cmd))
    subprocess.run(cmd, cwd=REPO, env=env, check=True)
    return Path(env["CARGO_TARGET_DIR"]) / "release" / "examples" / "catalog_load"


def run(binary, directory, reps, timeout):
    started = time.monotonic()
    try:
        out = subprocess.run(
            [str(binary), str(directory), str(reps)],
            capture_output=True, text=True, check=True, timeout=timeout,
        ).stdout
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - started
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return rows, time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,2000,4000,8000,16000")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per size (best is shown)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per size before giving up")
    parser.add_argument("--diag-offerings", type=int, default=10000)
    parser.add_argument("--no-diags", action="store_true", help="skip the 100k-diagnostics case")
    parser.add_argument("--binary", help="a prebuilt catalog_load harness (skips cargo build)")
    args = parser.parse_args()
    binary = Path(args.binary) if args.binary else build()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    with tempfile.TemporaryDirectory(prefix="catalog-bench-") as tmp:
        tmp = Path(tmp)
        print(f"{'offerings':>9} {'MB':>6} {'load s':>8} {'ratio':>6} {'diags':>6}")
        previous = None
        for n in sizes:
            directory = tmp / f"n{n}"
            directory.mkdir()
            size = generate(directory / "catalog.hcl", n)
            rows, wall = run(binary, directory, args.reps, args.timeout)
            if rows is None:
                print(f"{n:>9} {size / 1e6:>6.2f} {'>' + format(wall, '.0f'):>8}  (timed out)", flush=True)
                previous = None
                continue
            best = min(row["load_s"] for row in rows)
            ratio = ""
            if previous and previous[0] * 2 == n:
                ratio = f"{best / previous[1]:.2f}"
            print(f"{n:>9} {size / 1e6:>6.2f} {best:>8.3f} {ratio:>6} {rows[0]['diagnostics']:>6}", flush=True)
            if rows[0]["offerings"] != n or rows[0]["diagnostics"] != 0:
                log(f"bench: WARNING: expected {n} offerings and no diagnostics, got {rows[0]}")
            previous = (n, best)

        if not args.no_diags:
            directory = tmp / "diags"
            directory.mkdir()
            size = generate(directory / "catalog.hcl", args.diag_offerings, errors_per_offering=10)
            rows, wall = run(binary, directory, args.reps, args.timeout)
            if rows is None:
                print(f"diagnostics case: timed out after {wall:.0f} s")
            else:
                load = min(row["load_s"] for row in rows)
                printed = min(row["print_s"] for row in rows)
                print(
                    f"diagnostics case: {rows[0]['diagnostics']} diagnostics, {size / 1e6:.2f} MB: "
                    f"load {load:.3f} s, print {printed:.3f} s ({rows[0]['printed_bytes'] / 1e6:.1f} MB of text)"
                )


if __name__ == "__main__":
    main()

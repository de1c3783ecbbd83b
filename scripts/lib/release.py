#!/usr/bin/env python3
"""Packaging half of scripts/release (Python 3 stdlib only).

    release.py provider OUT VERSION OS_ARCH BINARY   # terraform-provider-platform_V_OS_ARCH.zip
    release.py broker   OUT VERSION OS_ARCH BINARY DOC...   # platform-broker_V_OS_ARCH.tar.gz
    release.py sums     OUT VERSION                  # both _SHA256SUMS files, over what OUT holds

Archives are reproducible: fixed timestamps, owners and modes, so the same
binary always gives the same zip and the same checksum.
"""

import gzip
import hashlib
import io
import os
import re
import sys
import tarfile
import zipfile
from pathlib import Path

PROVIDER = "terraform-provider-platform"
BROKER = "platform-broker"
EPOCH_ZIP = (1980, 1, 1, 0, 0, 0)


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def provider(out: Path, version: str, platform: str, binary: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        info = zipfile.ZipInfo(f"{PROVIDER}_v{version}", date_time=EPOCH_ZIP)
        info.external_attr = (0o100755 & 0xFFFF) << 16
        info.create_system = 3  # Unix: the mode above is honoured on extraction
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, binary.read_bytes())
    name = f"{PROVIDER}_{version}_{platform}.zip"
    write_atomic(out / name, buf.getvalue())
    print(f"  {name}  {len(buf.getvalue()) / 1e6:.1f} MB")


def broker(out: Path, version: str, platform: str, binary: Path, docs) -> None:
    top = f"{BROKER}_{version}_{platform}"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, mode in [(binary, 0o755)] + [(Path(d), 0o644) for d in docs]:
            data = path.read_bytes()
            info = tarfile.TarInfo(f"{top}/{path.name}")
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    name = f"{top}.tar.gz"
    write_atomic(out / name, packed.getvalue())
    print(f"  {name}  {len(packed.getvalue()) / 1e6:.1f} MB")


def sums(out: Path, version: str) -> None:
    v = re.escape(version)
    groups = {
        f"{PROVIDER}_{version}_SHA256SUMS": re.compile(
            rf"^{PROVIDER}_{v}_([a-z0-9]+_[a-z0-9]+\.zip|manifest\.json)$"
        ),
        f"{BROKER}_{version}_SHA256SUMS": re.compile(rf"^{BROKER}_{v}_[a-z0-9]+_[a-z0-9]+\.tar\.gz$"),
    }
    for sums_name, pattern in groups.items():
        lines = []
        for path in sorted(out.iterdir()):
            if path.is_file() and pattern.match(path.name):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                lines.append(f"{digest}  {path.name}\n")
        if lines:
            write_atomic(out / sums_name, "".join(lines).encode())
            print(f"  {sums_name}  ({len(lines)} files)")


def main(argv) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 1
    what, out, version = argv[0], Path(argv[1]), argv[2]
    if what == "provider" and len(argv) == 5:
        provider(out, version, argv[3], Path(argv[4]))
    elif what == "broker" and len(argv) >= 5:
        broker(out, version, argv[3], Path(argv[4]), argv[5:])
    elif what == "sums" and len(argv) == 3:
        sums(out, version)
    else:
        print(__doc__, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env bash
# install-platform.sh — what every pipeline job runs first: installs platform-broker
# from the team's release (served by `platform-broker mirror serve`, or any HTTPS
# server holding the files `scripts/release` writes), after checking the signature
# of its checksums against the team's public key and the tarball against them; then
# writes a Terraform CLI configuration that installs platform/platform from the same
# mirror (Terraform checks that download against the release's checksums itself).
# Copy it into the infrastructure repository (the examples use ci/install-platform.sh).
#
#   PLATFORM_MIRROR_URL   base URL of the mirror, e.g. https://platform-mirror.example.com/
#   PLATFORM_VERSION      release to install, e.g. 0.1.0
#   PLATFORM_RELEASE_KEY  the public key that signs releases (ASCII armor), a file committed
#                         next to this script: never fetched from the mirror it vouches for
#   PLATFORM_INSTALL_DIR  where platform-broker goes (default: $HOME/.local/bin); added to
#                         GITHUB_PATH when that is set
#   TF_CLI_CONFIG_FILE    where the CLI configuration goes (default: $HOME/.terraformrc)
#
# Needs bash, curl, gpg, sha256sum, tar. Exits non-zero, installing nothing, when a
# signature or checksum does not match.
set -euo pipefail

die() { echo "install-platform: $*" >&2; exit 1; }

: "${PLATFORM_MIRROR_URL:?set PLATFORM_MIRROR_URL (https://…/)}"
: "${PLATFORM_VERSION:?set PLATFORM_VERSION (e.g. 0.1.0)}"
: "${PLATFORM_RELEASE_KEY:?set PLATFORM_RELEASE_KEY (the release public key file)}"
[[ -f "$PLATFORM_RELEASE_KEY" ]] || die "PLATFORM_RELEASE_KEY: no file $PLATFORM_RELEASE_KEY"
[[ "$PLATFORM_MIRROR_URL" == https://* ]] || die "PLATFORM_MIRROR_URL must be https:// (Terraform refuses other mirrors)"
MIRROR="${PLATFORM_MIRROR_URL%/}/"
INSTALL_DIR="${PLATFORM_INSTALL_DIR:-$HOME/.local/bin}"
CLI_CONFIG="${TF_CLI_CONFIG_FILE:-$HOME/.terraformrc}"
for cmd in curl gpg sha256sum tar; do
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found"
done

case "$(uname -s)_$(uname -m)" in
  Linux_x86_64) PLATFORM=linux_amd64 ;;
  Linux_aarch64) PLATFORM=linux_arm64 ;;
  Darwin_arm64) PLATFORM=darwin_arm64 ;;
  Darwin_x86_64) PLATFORM=darwin_amd64 ;;
  *) die "no release for $(uname -s) $(uname -m)" ;;
esac

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
SUMS="platform-broker_${PLATFORM_VERSION}_SHA256SUMS"
TARBALL="platform-broker_${PLATFORM_VERSION}_${PLATFORM}.tar.gz"
for file in "$SUMS" "$SUMS.sig" "$TARBALL"; do
  curl -fsS --retry 3 -o "$WORK/$file" "${MIRROR}releases/$file" \
    || die "cannot download ${MIRROR}releases/$file"
done

# The signature, against the committed key only (a keyring of its own).
export GNUPGHOME="$WORK/gnupg"
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --import "$PLATFORM_RELEASE_KEY" 2>/dev/null || die "PLATFORM_RELEASE_KEY is not a public key"
gpg --batch --quiet --verify "$WORK/$SUMS.sig" "$WORK/$SUMS" 2>/dev/null \
  || die "$SUMS: the signature does not verify with PLATFORM_RELEASE_KEY"
# The tarball, against the signed checksums (its line must be there).
grep -q "  $TARBALL\$" "$WORK/$SUMS" || die "$SUMS does not list $TARBALL"
(cd "$WORK" && grep "  $TARBALL\$" "$SUMS" | sha256sum --quiet -c -) \
  || die "$TARBALL does not match its checksum"

tar -xzf "$WORK/$TARBALL" -C "$WORK"
mkdir -p "$INSTALL_DIR"
install -m 0755 "$WORK/${TARBALL%.tar.gz}/platform-broker" "$INSTALL_DIR/platform-broker"
if [[ -n "${GITHUB_PATH:-}" ]]; then
  echo "$INSTALL_DIR" >> "$GITHUB_PATH"
fi

# platform/platform from the mirror; every other provider as usual.
mkdir -p "$(dirname "$CLI_CONFIG")"
cat > "$CLI_CONFIG" <<EOF
provider_installation {
  network_mirror {
    url     = "$MIRROR"
    include = ["registry.terraform.io/platform/platform"]
  }
  direct {
    exclude = ["registry.terraform.io/platform/platform"]
  }
}
EOF
echo "install-platform: $("$INSTALL_DIR/platform-broker" --version) in $INSTALL_DIR; provider mirror $MIRROR in $CLI_CONFIG"

# scripts/lib/deb.sh — install a Debian package when a command is missing.
#
#   need_deb COMMAND PACKAGE
#
# Runs apt-get as root (or through sudo when there is one); otherwise says
# which package to install and fails.
need_deb() {
  local cmd="$1" pkg="$2"
  command -v "$cmd" >/dev/null 2>&1 && return 0
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "'$cmd' not found: install the Debian package $pkg (apt-get install $pkg)" >&2
      return 1
    fi
  fi
  echo "installing $pkg (for $cmd) with apt-get" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null \
    || { "${sudo[@]}" apt-get update -q >/dev/null \
         && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null; } \
    || { echo "apt-get install $pkg failed" >&2; return 1; }
  command -v "$cmd" >/dev/null 2>&1
}

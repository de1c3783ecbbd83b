#!/usr/bin/env bash
# Runs every fuzz target in turn, never in parallel: one libFuzzer process each (the
# default; `-jobs=1 -workers=1` would do the same but send the output to fuzz-0.log).
#
#   fuzz/run-all.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 600. TARGET defaults to all of them. Each run reads and
# grows fuzz/corpus/<target>/ (git-ignored) and reads fuzz/seeds/<target>/ (committed);
# a crash lands in fuzz/artifacts/<target>/ and stops the script with a non-zero status.
# TOOLCHAIN (default: nightly) picks the rustup toolchain for `cargo +$TOOLCHAIN fuzz`.
set -euo pipefail

cd "$(dirname "$0")"
seconds="${1:-600}"
shift || true
toolchain="${TOOLCHAIN:-nightly}"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(value_msgpack catalog_load plan_json broker_config policy_config)
fi

max_len() {
    case "$1" in
        plan_json) echo 16384 ;;
        catalog_load) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

# Build once, up front, so a compile error shows before any run starts.
cargo "+$toolchain" fuzz build

for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "seeds/$target"
    echo "=== $target: ${seconds}s"
    cargo "+$toolchain" fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len="$(max_len "$target")" -print_final_stats=1
done

#!/usr/bin/env bash
# Builds what bench/gpu_session.sh runs on a GPU machine that has no Rust
# toolchain: lam-bench and the digits examples (release) and the GPU test
# binaries, stripped, in .devbin/, and packed into .devpack/bins.tar.xz
# (about 46 MB with the baseline below: small enough to carry to the GPU machine, where
# gpu_session.sh unpacks it). Add `/.devbin/` and `/.devpack/` to
# .git/info/exclude. The binaries need a glibc at least as new as this
# machine's.
#
# Also lam-bench built at LAM_BASELINE (a commit; default bab0dda, main
# before the matmul kernel changes of 2026-11-30 that no GPU has measured
# yet; `none` skips it) as .devbin/lam-bench-base, in a worktree with its
# own target directory (LAM_BASELINE_TARGET, /tmp/lam-baseline-target):
# gpu_session.sh's `ab` step times it against the current one side by side.
#
#   bash bench/build_gpu_session.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .devbin
mkdir -p .devbin
cargo build --release -p lam-train --example digits --example digits_cnn
cargo build --release -p lam-bench
cp target/release/lam-bench target/release/examples/digits target/release/examples/digits_cnn .devbin/
baseline=${LAM_BASELINE:-bab0dda}
if [ "$baseline" != none ]; then
    tree=$(mktemp -d)
    git worktree add --detach "$tree" "$baseline" >/dev/null
    target=${LAM_BASELINE_TARGET:-/tmp/lam-baseline-target}
    (cd "$tree" && CARGO_TARGET_DIR=$target cargo build --release -p lam-bench)
    cp "$target/release/lam-bench" .devbin/lam-bench-base
    git worktree remove --force "$tree"
fi
# Test binaries: their paths come from cargo's JSON messages.
tests=$(cargo test --no-run --message-format=json -p lam -p lam-wgpu \
    --test ops --test grad --test nn_layers --test fusion --test learning \
    --test gpu_queue --test profile --test steady_state --test differential --test attention --test amp 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
')
while read -r name exe; do
    cp "$exe" ".devbin/t-$name"
done <<<"$tests"
strip .devbin/*
rm -rf .devpack
mkdir -p .devpack
tar -C .devbin -cf - . | xz -T2 -6 >.devpack/bins.tar.xz
ls -la .devbin .devpack

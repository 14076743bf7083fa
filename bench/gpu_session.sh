#!/usr/bin/env bash
# One prepared run of lam's GPU measurements on a machine with a real GPU
# (and PyTorch with CUDA beside it), from binaries built elsewhere by
# bench/build_gpu_session.sh. Everything it prints also goes to $OUT/gpu.log.
#
#   bash bench/gpu_session.sh [BINDIR]
#
# BINDIR defaults to .devbin, or to the unpacked .devpack/bins.tar.xz when
# that archive is present. With the library's device tool: carry `.devpack`
# and `.gl` (the Vulkan/EGL loader .debs, see .library/device/README.md) and
# run `bash bench/gpu_session.sh` with a timeout of about 540 s.
#
# Order: what matters most first, each step under its own time limit, so a
# slow step cannot eat the rest:
#   1. the adapter, and matmul GFLOP/s at 4096 and 8192 for both WGSL kernels
#      (64- and 128-tiles) beside PyTorch's fp32 cuBLAS, then every matmul
#      kernel (subgroup, cooperative-matrix f16 → f32, autotuned) at 4096;
#   2. `mlp 128` and `mlp 32` samples/s, lam on the GPU alternating with
#      PyTorch-CUDA three times, and `cnn 64` once each;
#   2b. `gpt` (6 layers, d_model 512, 8 heads, seq 256, vocab 8192; batch 16),
#      `resnet 128` and `lstm 64`: lam on the GPU beside PyTorch-CUDA in fp32
#      and with AMP (autocast float16 + GradScaler), once each, with device
#      memory (lam's pool, PyTorch's max_memory_allocated);
#   3. the profiler's table for `mlp 128` on the GPU (timestamp queries),
#      and memory over a DataLoader-fed training run (`soak`, 2,000 steps);
#   4. the digits examples on the GPU (accuracy and wall time);
#   5. the GPU conformance and differential test binaries.
#
# LAM_SESSION_SMOKE=1 shrinks every size and skips steps 4-5: a check of the
# script itself on a software adapter (lavapipe) before spending GPU time.
set -u
if [ "${LAM_SESSION_SMOKE:-0}" = 1 ]; then
    SIZES="128 256" ITERS=2 STEPS=3 SOAK=1000 FULL=0
    GPT="--layers 1 --d-model 64 --heads 2 --seq 32 --vocab 128" BIG_STEPS=3
else
    SIZES="4096 8192" ITERS=0 STEPS=500 SOAK=2000 FULL=1
    GPT="" BIG_STEPS=30
fi
if [ $# -eq 0 ] && [ -f .devpack/bins.tar.xz ]; then
    mkdir -p /tmp/lam-bin
    tar -C /tmp/lam-bin -xJf .devpack/bins.tar.xz
    BIN=/tmp/lam-bin
else
    BIN=$(realpath "${1:-.devbin}")
fi
OUT=${OUT:-/tmp/lam-gpu-session}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu.log") 2>&1

step() { echo; echo "=== $* ($(date +%T))"; }
run() {
    local limit=$1
    shift
    echo "\$ $*"
    timeout -k 10 "$limit" "$@"
    echo "(exit $?)"
}

# Vulkan and EGL loaders carried as .debs (see .library/device/README.md).
if [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
# Test binaries and examples look for data under the path they were built in.
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }
export XDG_RUNTIME_DIR=/tmp
export LAM_DEVICE=gpu

step "adapter"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.sm --format=csv
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f $icd ] && ! "$BIN/lam-bench" matmul 256 2 --device gpu 2>&1 | grep -qi nvidia; then
    echo "no NVIDIA adapter through the default loader paths; pointing at the driver's ICD files"
    export VK_DRIVER_FILES=$icd
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
run 60 "$BIN/lam-bench" matmul 256 2 --device gpu

step "matmul"
for n in $SIZES; do
    iters=$((ITERS > 0 ? ITERS : (n == 4096 ? 50 : 10)))
    for tiles in 64 128; do
        LAM_MATMUL_TILES=$tiles run 120 "$BIN/lam-bench" matmul $n $iters --device gpu
    done
    run 120 python3 bench/torch_bench_cuda.py matmul $n $iters
done
[ "$FULL" = 1 ] && run 120 "$BIN/lam-bench" matmul-sweep --device gpu

# --- matmul kernels: each WGSL kernel forced, then the autotuned choice, at
# f32 (highest) and with f16-input cooperative matrices allowed (high). A
# kernel the adapter cannot run prints why and is skipped.
step "matmul kernels"
n=${SIZES%% *}
for kp in tile64:highest tile128:highest subgroup:highest auto:highest coop:high coop128:high auto:high; do
    run 120 "$BIN/lam-bench" matmul $n $((ITERS > 0 ? ITERS : 50)) --device gpu --kernel ${kp%%:*} --precision ${kp##*:}
done
# --- end matmul kernels

step "mlp and cnn: lam (gpu) alternating with torch (cuda)"
for i in 1 2 3; do
    run 120 "$BIN/lam-bench" mlp 128 $STEPS --device gpu
    run 120 python3 bench/torch_bench_cuda.py mlp 128 $STEPS
    run 120 "$BIN/lam-bench" mlp 32 $STEPS --device gpu
    run 120 python3 bench/torch_bench_cuda.py mlp 32 $STEPS
done
run 120 "$BIN/lam-bench" cnn 64 $STEPS --device gpu
run 120 python3 bench/torch_bench_cuda.py cnn 64 $STEPS

step "gpt, resnet, lstm: lam (gpu) beside torch (cuda) fp32 and amp"
# $GPT is empty (lam-bench's and the script's defaults: the GPU configuration) or the smoke sizes.
# shellcheck disable=SC2086
run 120 "$BIN/lam-bench" gpt 16 $BIG_STEPS $GPT --device gpu
# shellcheck disable=SC2086
run 120 python3 bench/torch_bench_cuda.py gpt 16 $BIG_STEPS $GPT
# shellcheck disable=SC2086
run 120 python3 bench/torch_bench_cuda.py gpt 16 $BIG_STEPS $GPT --amp
for model in "resnet 128" "lstm 64"; do
    # shellcheck disable=SC2086
    run 120 "$BIN/lam-bench" $model $((BIG_STEPS * 3)) --device gpu
    # shellcheck disable=SC2086
    run 120 python3 bench/torch_bench_cuda.py $model $((BIG_STEPS * 3))
    # shellcheck disable=SC2086
    run 120 python3 bench/torch_bench_cuda.py $model $((BIG_STEPS * 3)) --amp
done

step "profiler: mlp 128 on the gpu"
LAM_PROFILE=1 run 120 "$BIN/lam-bench" mlp 128 $STEPS --device gpu

step "soak: memory over a DataLoader-fed run on the gpu"
run 120 "$BIN/lam-bench" soak $SOAK --device gpu
if [ "$FULL" != 1 ]; then
    step "done (smoke run)"
    exit 0
fi

step "digits examples on the gpu"
run 120 "$BIN/digits"
run 150 "$BIN/digits_cnn"

step "gpu tests (conformance bodies on the NVIDIA adapter, differential vs cpu), in parallel"
mkdir -p /tmp/lam-test-logs
for t in "$BIN"/t-*; do
    name=$(basename "$t")
    (timeout -k 10 150 "$t" --test-threads 2 >"/tmp/lam-test-logs/$name.log" 2>&1
        echo "(exit $?)" >>"/tmp/lam-test-logs/$name.log") &
done
wait
for log in /tmp/lam-test-logs/*.log; do
    echo "--- $(basename "$log" .log)"
    grep -E "^test result|FAILED|panicked|skipped|^\(exit" "$log" | head -20
done
step "done"

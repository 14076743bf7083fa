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
# Order: what matters most first, each step under its own time limit and
# all of them under one budget (LAM_SESSION_BUDGET seconds, 520 by default:
# a step that would run past it is cut short or skipped), so a slow step
# cannot eat the rest:
#   1. the adapter, and matmul GFLOP/s at 4096 and 8192 for both WGSL
#      register-tile kernels (64 and 128) beside cuBLAS fp32 (TF32 off), and
#      at 4096 also cuBLAS with TF32 and in float16; then every lam kernel
#      (subgroup, cooperative-matrix f16 → f32, autotuned) at 4096, F16
#      products (mixed precision's) on the cooperative kernels, and
#      gpt's weight-gradient shapes on the tile kernels and split-K, and
#      its 512-wide forward products on the tile kernels (tile128x64's);
#   1a. (`ab`, where the pack holds lam-bench-base, lam-bench at an older
#      commit: see build_gpu_session.sh) the old binary against the
#      current one, alternated twice: matmul 4096 f32 on tile128 and tile64,
#      F16 on coop128 and tile128, and `gpt 16` in f32 and with --amp, each
#      binary with its own autotune cache;
#   1b. wgpu's shader checks: matmul 4096 and `gpt 16` with all of them,
#      without the loop counters (`LAM_SHADER_CHECKS=no-loop-counters`) and
#      without index clamps and division guards too (`unchecked`);
#   2. `gpt` (6 layers, d_model 512, 8 heads, seq 256, vocab 8192; batch 16),
#      `resnet 128` and `lstm 64`: lam on the GPU in f32, with tensor-core
#      products allowed (`LAM_MATMUL_PRECISION=high`) and in mixed precision
#      (`--amp`), beside PyTorch-CUDA in fp32 and with AMP (autocast float16 +
#      GradScaler), once each, with device memory (lam's pool, PyTorch's
#      max_memory_allocated); then the profiler's table for `gpt`;
#   2b. attention: `gpt` with each LAM_ATTENTION (auto: the composite at
#      its 32 MiB of scores a layer; fused: the per-row kernels; tiled), and
#      a long-sequence `gpt` (seq 1024, batch 4: 128 MiB of scores a layer,
#      past what Auto composes, so auto = tiled there) with the per-row and
#      tiled kernels beside PyTorch-CUDA, then the profiler's table for
#      `gpt` on the tiled kernels;
#   3. `mlp 128` and `mlp 32` samples/s, lam alternating with PyTorch-CUDA
#      twice, and `cnn 64` once each;
#   4. memory over a DataLoader-fed training run (`soak`, 2,000 steps) and
#      the digits example on the GPU (accuracy and wall time);
#   5. the GPU conformance and differential test binaries.
#
# LAM_SESSION_STEPS runs only the steps it names, of: matmul, ab (1a), checks (1b), models (2),
# attention (2b), profile, small (3), soak, digits (4), tests (5; LAM_SESSION_TESTS is a
# name filter passed to every test binary; LAM_SESSION_MODELS limits step 2
# to some of gpt, resnet, lstm). The profile step also profiles `resnet`
# and `lstm`.
#
# LAM_SESSION_SMOKE=1 shrinks every size and skips steps 4-5: a check of the
# script itself on a software adapter (lavapipe) before spending GPU time.
set -u
if [ "${LAM_SESSION_SMOKE:-0}" = 1 ]; then
    SIZES="128 256" ITERS=2 STEPS=3 SOAK=1000 FULL=0
    GPT="--layers 1 --d-model 64 --heads 2 --seq 32 --vocab 128" BIG_STEPS=3
    GPT_LONG="--layers 1 --d-model 64 --heads 2 --seq 64 --vocab 128" LONG_STEPS=2
    RESNET=8 LSTM=8
else
    SIZES="4096 8192" ITERS=0 STEPS=500 SOAK=2000 FULL=1
    GPT="" BIG_STEPS=30
    GPT_LONG="--seq 1024" LONG_STEPS=10
    RESNET=128 LSTM=64
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

DEADLINE=$((SECONDS + ${LAM_SESSION_BUDGET:-520}))
# wants STEP: whether LAM_SESSION_STEPS (all of them by default) names STEP.
wants() {
    [[ " ${LAM_SESSION_STEPS:-matmul ab checks models attention profile small soak digits tests} " == *" $1 "* ]]
}
step() { echo; echo "=== $* ($(date +%T), $((DEADLINE - SECONDS)) s left)"; }
# run LIMIT CMD...: CMD under LIMIT seconds, or fewer when the budget is
# nearly spent; skipped when under 10 s of it remain.
run() {
    local limit=$1 left=$((DEADLINE - SECONDS))
    shift
    echo "\$ $*"
    if [ "$left" -lt 10 ]; then
        echo "(skipped: the session budget is spent)"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    timeout -k 5 "$limit" "$@"
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

if wants matmul; then
    step "matmul"
    for n in $SIZES; do
        iters=$((ITERS > 0 ? ITERS : (n == 4096 ? 50 : 10)))
        for tiles in 64 128; do
            LAM_MATMUL_TILES=$tiles run 60 "$BIN/lam-bench" matmul $n $iters --device gpu
        done
        run 60 python3 bench/torch_bench_cuda.py matmul $n $iters
    done
    n=${SIZES%% *}
    iters=$((ITERS > 0 ? ITERS : 50))
    run 60 python3 bench/torch_bench_cuda.py matmul $n $iters --tf32
    run 60 python3 bench/torch_bench_cuda.py matmul $n $iters --fp16

    # --- matmul kernels: each WGSL kernel forced, then the autotuned choice, at
    # f32 (highest) and with f16-input cooperative matrices allowed (high). A
    # kernel the adapter cannot run prints why and is skipped.
    step "matmul kernels"
    for kp in subgroup:highest auto:highest coop:high coop128:high auto:high; do
        run 60 "$BIN/lam-bench" matmul $n $iters --device gpu --kernel ${kp%%:*} --precision ${kp##*:}
    done
    # F16 x F16 -> F16 (mixed precision's products, beside cuBLAS --fp16
    # above): the cooperative kernels take them at the default precision.
    for k in coop coop128 tile128 auto; do
        run 60 "$BIN/lam-bench" matmul $n $iters --device gpu --dtype f16 --kernel $k
    done
    # gpt's weight gradients (xᵀ dy over its 4,096 tokens): few output
    # tiles along a long K, on each kernel that takes them and split-K.
    shapes="1536x4096x512 512x4096x512 512x4096x2048"
    [ "$FULL" = 1 ] || shapes=128x1024x128
    for shape in $shapes; do
        for k in tile64 tile128 splitk64 splitk128 auto; do
            run 60 "$BIN/lam-bench" matmul $shape $iters --device gpu --kernel $k
        done
        run 60 python3 bench/torch_bench_cuda.py matmul $shape $iters
    done
    # gpt's 512-wide forward products (attention output, the MLP's second
    # Linear; their input gradients are alike): 128 tiles of 128 x 128,
    # 256 of 128 x 64 (tile128x64), 512 of 64 x 64.
    shapes="4096x512x512 4096x2048x512"
    [ "$FULL" = 1 ] || shapes=256x64x192
    for shape in $shapes; do
        for k in tile64 tile128 tile128x64 splitk128 auto; do
            run 60 "$BIN/lam-bench" matmul $shape $iters --device gpu --kernel $k
        done
        run 60 python3 bench/torch_bench_cuda.py matmul $shape $iters
    done
    # --- end matmul kernels
fi

if wants ab && [ -x "$BIN/lam-bench-base" ]; then
    step "ab: lam-bench at the baseline commit (base) against this one (new), alternated"
    n=${SIZES%% *}
    iters=$((ITERS > 0 ? ITERS : 50))
    # Each binary keeps its own autotune cache: the two may tune alike-named
    # kernels differently.
    ab() {
        local limit=$1
        shift
        for round in 1 2; do
            for b in base new; do
                local exe="$BIN/lam-bench"
                [ $b = base ] && exe="$BIN/lam-bench-base"
                echo "[$b, round $round]"
                XDG_CACHE_HOME=/tmp/lam-ab-cache-$b run "$limit" "$exe" "$@"
            done
        done
    }
    for kd in tile128:f32 tile64:f32 coop128:f16 tile128:f16; do
        ab 60 matmul $n $iters --device gpu --kernel ${kd%%:*} --dtype ${kd##*:}
    done
    # shellcheck disable=SC2086
    ab 90 gpt 16 $((BIG_STEPS / 3 + 1)) $GPT --device gpu
    # shellcheck disable=SC2086
    ab 90 gpt 16 $((BIG_STEPS / 3 + 1)) $GPT --device gpu --amp
fi

if wants checks; then
    step "shader checks: matmul and gpt with all of wgpu's, without loop counters, unchecked"
    n=${SIZES%% *}
    iters=$((ITERS > 0 ? ITERS : 50))
    for c in full no-loop-counters unchecked; do
        echo "LAM_SHADER_CHECKS=$c"
        LAM_SHADER_CHECKS=$c run 60 "$BIN/lam-bench" matmul $n $iters --device gpu
        # shellcheck disable=SC2086
        LAM_SHADER_CHECKS=$c run 90 "$BIN/lam-bench" gpt 16 $((BIG_STEPS / 3 + 1)) $GPT --device gpu
    done
fi

if wants models; then
    step "gpt, resnet, lstm: lam (gpu) f32, tensor cores, amp beside torch (cuda) fp32 and amp"
    # $GPT is empty (lam-bench's and the script's defaults: the GPU configuration) or the smoke sizes.
    for model in "gpt 16 $BIG_STEPS $GPT" "resnet $RESNET $((BIG_STEPS * 3))" "lstm $LSTM $((BIG_STEPS * 3))"; do
        [[ " ${LAM_SESSION_MODELS:-gpt resnet lstm} " == *" ${model%% *} "* ]] || continue
        # shellcheck disable=SC2086
        run 90 "$BIN/lam-bench" $model --device gpu
        # shellcheck disable=SC2086
        LAM_MATMUL_PRECISION=high run 90 "$BIN/lam-bench" $model --device gpu
        # shellcheck disable=SC2086
        run 90 "$BIN/lam-bench" $model --device gpu --amp
        # shellcheck disable=SC2086
        run 90 python3 bench/torch_bench_cuda.py $model
        # shellcheck disable=SC2086
        run 90 python3 bench/torch_bench_cuda.py $model --amp
    done
    # The lstm's per-step products are few tiles: with the autotuner (whose
    # candidates include Tile32) above, and here on the size rule alone.
    if [[ " ${LAM_SESSION_MODELS:-gpt resnet lstm} " == *" lstm "* ]]; then
        echo "LAM_AUTOTUNE=0"
        LAM_AUTOTUNE=0 run 90 "$BIN/lam-bench" lstm $LSTM $((BIG_STEPS * 3)) --device gpu
    fi
fi

if wants attention; then
    step "attention: gpt with each LAM_ATTENTION, and a long-sequence gpt"
    for a in auto fused tiled; do
        echo "LAM_ATTENTION=$a"
        # shellcheck disable=SC2086
        LAM_ATTENTION=$a run 90 "$BIN/lam-bench" gpt 16 $BIG_STEPS $GPT --device gpu
    done
    for a in fused tiled; do
        echo "LAM_ATTENTION=$a"
        # shellcheck disable=SC2086
        LAM_ATTENTION=$a run 90 "$BIN/lam-bench" gpt 4 $LONG_STEPS $GPT_LONG --device gpu
    done
    # shellcheck disable=SC2086
    run 90 python3 bench/torch_bench_cuda.py gpt 4 $LONG_STEPS $GPT_LONG
    # shellcheck disable=SC2086
    LAM_ATTENTION=tiled LAM_PROFILE=1 run 90 "$BIN/lam-bench" gpt 16 $((BIG_STEPS / 3 + 1)) $GPT --device gpu
fi

if wants profile; then
    step "profiler: gpt, resnet and lstm on the gpu"
    # shellcheck disable=SC2086
    # With shapes: each matrix product's kernel time by its sizes and load modes.
    LAM_PROFILE=shapes run 90 "$BIN/lam-bench" gpt 16 $((BIG_STEPS / 3 + 1)) $GPT --device gpu
    LAM_PROFILE=1 run 90 "$BIN/lam-bench" resnet $RESNET $BIG_STEPS --device gpu
    LAM_PROFILE=1 run 90 "$BIN/lam-bench" lstm $LSTM $BIG_STEPS --device gpu
fi

if wants small; then
    step "mlp and cnn: lam (gpu) alternating with torch (cuda)"
    for i in 1 2; do
        run 60 "$BIN/lam-bench" mlp 128 $STEPS --device gpu
        run 60 python3 bench/torch_bench_cuda.py mlp 128 $STEPS
        run 60 "$BIN/lam-bench" mlp 32 $STEPS --device gpu
        run 60 python3 bench/torch_bench_cuda.py mlp 32 $STEPS
    done
    run 60 "$BIN/lam-bench" cnn 64 $STEPS --device gpu
    run 60 python3 bench/torch_bench_cuda.py cnn 64 $STEPS
fi

if wants soak; then
    step "soak: memory over a DataLoader-fed run on the gpu"
    run 60 "$BIN/lam-bench" soak $SOAK --device gpu
fi

if [ "$FULL" != 1 ]; then
    step "done (smoke run)"
    exit 0
fi

if wants digits; then
    step "digits example on the gpu"
    run 60 "$BIN/digits"
fi

if wants tests; then
    step "gpu tests (conformance bodies on the NVIDIA adapter, differential vs cpu), in parallel"
    mkdir -p /tmp/lam-test-logs
    left=$((DEADLINE - SECONDS - 5))
    if [ "$left" -ge 20 ]; then
        pids=()
        for t in "$BIN"/t-*; do
            name=$(basename "$t")
            # shellcheck disable=SC2086
            (timeout -k 5 "$left" "$t" --test-threads 2 ${LAM_SESSION_TESTS:-} >"/tmp/lam-test-logs/$name.log" 2>&1
                echo "(exit $?)" >>"/tmp/lam-test-logs/$name.log") &
            pids+=($!)
        done
        # Only these: a bare `wait` also waits for the `tee` of the log,
        # which never ends, and the step then hangs to the outer limit.
        wait "${pids[@]}"
        for log in /tmp/lam-test-logs/*.log; do
            echo "--- $(basename "$log" .log)"
            grep -E "^test result|FAILED|panicked|skipped|^\(exit" "$log" | head -20
        done
        tar -C /tmp/lam-test-logs -czf "$OUT/test-logs.tgz" .
    else
        echo "(skipped: the session budget is spent)"
    fi
fi
step "done"

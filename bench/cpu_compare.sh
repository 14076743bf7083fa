#!/usr/bin/env bash
# lam against PyTorch on this machine's CPU: each scenario runs lam-bench and
# bench/torch_bench.py alternately, RUNS times each (default 3), then prints
# every run's throughput, the medians, their ratio and the peak memories.
# Alternating puts both under the same background load; medians drop outliers.
#
#   cargo build --release -p lam-bench
#   bash bench/cpu_compare.sh [SCENARIO...]      # default: the training six below
#
# INFER=1 times inference instead of training (`--infer` to both: forward
# passes and the loss in evaluation mode without autograd); the scenarios
# ending in 1 (one sequence or image at a time, as a model serving single
# requests or a policy acting step by step) are meant for it. A forward
# pass takes about a third of a training step, so INFER runs three times
# the steps.
#
# PYTHON names the interpreter with torch (default python3). THREADS=N limits
# both to N threads (RAYON_NUM_THREADS for lam, OMP_NUM_THREADS for
# PyTorch); by default each uses every core. On a machine other jobs keep
# busy, PyTorch's OpenMP threads wait for each other at every parallel op
# and lose far more than lam's work-stealing pool, so THREADS=1 is the
# fairer comparison there.
set -u
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
PYTHON=${PYTHON:-python3}
GPT_CPU="--layers 2 --d-model 128 --heads 4 --seq 64 --vocab 256"
declare -A ARGS=(
    [mlp128]="mlp 128 200"
    [mlp32]="mlp 32 200"
    [cnn64]="cnn 64 100"
    [gpt]="gpt 16 20 $GPT_CPU"
    [lstm]="lstm 32 5"
    [resnet]="resnet 32 10"
    [gpt1]="gpt 1 200 $GPT_CPU"
    [lstm1]="lstm 1 100"
    [resnet1]="resnet 1 200"
    [mlp1]="mlp 1 5000"
)
ORDER=(gpt lstm resnet mlp128 mlp32 cnn64)
if [ -n "${THREADS:-}" ]; then
    export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
fi
[ $# -gt 0 ] && ORDER=("$@")
INFER_FLAG=()
[ -n "${INFER:-}" ] && INFER_FLAG=(--infer)

# "N samples/s" (or tokens/s) and "peak_rss=M" of a result line.
rate() { grep -oE '[0-9]+ (samples|tokens)/s' | head -1 | cut -d' ' -f1; }
peak() { grep -oE 'peak_rss=[0-9.]+' | head -1 | cut -d= -f2; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

for s in "${ORDER[@]}"; do
    # shellcheck disable=SC2086
    set -- ${ARGS[$s]} "${INFER_FLAG[@]}"
    [ -n "${INFER:-}" ] && set -- "$1" "$2" $(($3 * 3)) "${@:4}"
    lam_rates="" torch_rates="" lam_peak="" torch_peak=""
    for i in $(seq "$RUNS"); do
        l=$(target/release/lam-bench "$@" 2>/dev/null)
        t=$($PYTHON bench/torch_bench.py "$@" 2>/dev/null)
        echo "$s run $i (load $(cut -d' ' -f1 /proc/loadavg)): $l | $t"
        lam_rates+=" $(rate <<<"$l")" torch_rates+=" $(rate <<<"$t")"
        lam_peak=$(peak <<<"$l") torch_peak=$(peak <<<"$t")
    done
    lm=$(median <<<"$lam_rates") tm=$(median <<<"$torch_rates")
    echo "$s: lam${lam_rates} torch${torch_rates}; medians lam $lm torch $tm ratio $(awk -v a="$lm" -v b="$tm" 'BEGIN {printf "%.2f", a / b}') peak lam $lam_peak torch $torch_peak MiB"
done

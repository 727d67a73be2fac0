#!/usr/bin/env bash
# The GPU checks in one go, for a GPU machine with CuPy, Numba CUDA, PyTorch, pandas and pyarrow but nothing
# else of ours and no network: install the project from this working tree without dependencies (plus the
# wheels in .whl/, see bench/gpu_wheels.sh), run the `gpu` and `cuda` tests, then the GPU benchmark (compare
# kernel throughput, end to end at 1M and 10M records). Prints a table; writes JSON and logs to $OUT when set
# (else bench/results/). Finishes within 8 minutes: each step has its own `timeout`, and the benchmark gets what
# is left (its JSON is rewritten after every size, so a cut-short 10M run keeps the 1M figures).
#
#   bash bench/gpu_wheels.sh     # once, where there is network
#   bash bench/gpu_check.sh      # on the GPU machine, from the repository root
#   GPU_CHECK_BACKEND=cpu GPU_CHECK_SIZES=2000 GPU_CHECK_KERNEL_ARGS='--kernel-pairs 20000 --kernel-records 3000' \
#       bash bench/gpu_check.sh  # a dry run on a CPU (the gpu tests skip)
set -uo pipefail
cd "$(dirname "$0")/.."
BUDGET=${GPU_CHECK_SECONDS:-470}
SIZES=${GPU_CHECK_SIZES:-"1000000 10000000"}
BACKEND=${GPU_CHECK_BACKEND:-gpu}            # cpu: a dry run of this script on a machine without a GPU
KERNEL_ARGS=${GPU_CHECK_KERNEL_ARGS:-"--kernel-pairs 50000000 --kernel-records 1000000"}
RESULTS=${OUT:-bench/results}
mkdir -p "$RESULTS"
START=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - START))); }
declare -a SUMMARY=()
step() {  # step NAME SECONDS COMMAND...: run with a timeout, log to $RESULTS/NAME.log, remember the outcome
    local name=$1 seconds=$2
    shift 2
    echo "=== $name (timeout ${seconds}s)"
    local t0=$(date +%s)
    timeout "$seconds" "$@" 2>&1 | tee "$RESULTS/$name.log"
    local rc=${PIPESTATUS[0]}
    local outcome="ok"
    [ "$rc" -eq 124 ] && outcome="TIMED OUT" || { [ "$rc" -ne 0 ] && outcome="FAILED (exit $rc)"; }
    SUMMARY+=("$(printf '%-10s %-18s %5ss' "$name" "$outcome" $(( $(date +%s) - t0 )))")
}

export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# gpucdp.kernels lives in kernels/ (a package-dir mapping): an editable install without dependencies, or, if
# pip cannot build offline, the same layout assembled by hand.
if ! python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >"$RESULTS/install.log" 2>&1; then
    rm -rf /tmp/gpucdp-src && mkdir -p /tmp/gpucdp-src && cp -r gpucdp /tmp/gpucdp-src/ \
        && cp -r kernels /tmp/gpucdp-src/gpucdp/kernels
    export PYTHONPATH=/tmp/gpucdp-src${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
python3 -m gpucdp.cli info 2>&1

step tests 240 python3 -m pytest -q -rs -p no:cacheprovider -m "gpu or cuda" \
    tests/test_gpu.py tests/test_gpu_fallbacks.py tests/test_cuda_kernels.py tests/test_cuda_embed.py tests/test_cuda_layout.py
step bench $(( $(left) > 30 ? $(left) : 30 )) python3 bench/gpu_bench.py --backend "$BACKEND" \
    --sizes $SIZES $KERNEL_ARGS --workdir /tmp/gpucdp-bench --json "$RESULTS/gpu_bench.json"

echo "=== summary ($(( $(date +%s) - START ))s of ${BUDGET}s)"
printf '%s\n' "${SUMMARY[@]}"

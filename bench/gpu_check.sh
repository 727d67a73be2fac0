#!/usr/bin/env bash
# The GPU checks in one go, for a GPU machine with CuPy, Numba CUDA, PyTorch, pandas and pyarrow but nothing
# else of ours and no network: install the project from this working tree without dependencies (plus the
# wheels in .whl/, see bench/gpu_wheels.sh), run the `gpu` and `cuda` tests, then the GPU benchmark (compare
# kernel throughput, end to end at 1M and 10M records). Prints a table; writes JSON and logs to $OUT when
# set (else bench/results/). Finishes within 8 minutes: each step has its own `timeout`, and the benchmark
# gets what is left (its JSON is rewritten after every size, so a cut-short 10M run keeps the 1M figures). The
# tests that CI runs too (the CUDA simulator, PTX compilation) are left out; the largest size's data is
# generated while the tests run. Exits 1 when a step failed or timed out (the summary names it).
#
#   bash bench/gpu_wheels.sh     # once, where there is network
#   bash bench/gpu_check.sh      # on the GPU machine, from the repository root
#   GPU_CHECK_BACKEND=cpu GPU_CHECK_SIZES=2000 \
#       GPU_CHECK_KERNEL_ARGS='--kernel-pairs 20000 --kernel-records 3000' \
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
    [ "$outcome" = ok ] || FAILED=1
    SUMMARY+=("$(printf '%-10s %-18s %5ss' "$name" "$outcome" $(( $(date +%s) - t0 )))")
}

export PYTHONUNBUFFERED=1
FAILED=0
# numba-cuda finds libNVVM through CUDA_HOME when no nvidia-nvvm wheel is installed (the GPU machine's image
# has the toolkit in /usr/local/cuda and nvrtc from a wheel, from which numba-cuda will not infer CUDA_HOME).
if [ -z "${CUDA_HOME:-}${CUDA_PATH:-}" ] && [ -d /usr/local/cuda/nvvm ]; then
    export CUDA_HOME=/usr/local/cuda
fi
if compgen -G ".whl/*.whl" >/dev/null; then
    if timeout 120 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl >"$RESULTS/install.log" 2>&1; then
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
        SUMMARY+=("$(printf '%-10s %-18s' wheels ok)")
    else
        SUMMARY+=("$(printf '%-10s %-18s' wheels "FAILED (install.log)")"); FAILED=1
    fi
fi
# gpucdp.kernels lives in kernels/ (a package-dir mapping): an editable install without dependencies, or, if
# pip cannot build offline, the same layout by a link in this tree (a throwaway copy on the GPU machine),
# found through the repository root first on the path (python3 -m puts the working directory there anyway).
if timeout 120 python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . \
        >>"$RESULTS/install.log" 2>&1; then
    SUMMARY+=("$(printf '%-10s %-18s' install "ok (editable)")")
else
    [ -e gpucdp/kernels ] || ln -s ../kernels gpucdp/kernels
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
    SUMMARY+=("$(printf '%-10s %-18s' install "ok (by path; pip failed, see install.log)")")
fi

# The largest size's data, generated while the tests run (bench/run.py reuses what is there).
LARGEST=$(printf '%s\n' $SIZES | sort -n | tail -1)
DATA=/tmp/gpucdp-bench/data-${LARGEST}-s0-d0.5
GEN_PID=
if [ -n "$LARGEST" ] && [ ! -e "$DATA" ]; then
    mkdir -p /tmp/gpucdp-bench
    python3 -c "import sys; from gpucdp import synth
synth.write_dataset(sys.argv[1], int(sys.argv[2]), seed=0, difficulty=0.5)" "$DATA" "$LARGEST" \
        >"$RESULTS/generate.log" 2>&1 &
    GEN_PID=$!
fi

# What the machine is and whether its GPU answers: versions, CUDA paths, the plan, a Numba kernel on CuPy.
step preflight 120 python3 - "$BACKEND" <<'PY'
import importlib, subprocess, sys
for name in ("numpy", "pandas", "pyarrow", "numba", "numba_cuda", "cupy", "faiss", "pydantic",
             "cuda.bindings"):
    try:
        print(f"{name} {getattr(importlib.import_module(name), '__version__', '?')}")
    except Exception as exc:  # noqa: BLE001
        print(f"{name} missing ({type(exc).__name__})")
try:
    query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
    found = subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.strip()
    print(found or "nvidia-smi: none")
except (OSError, subprocess.TimeoutExpired) as exc:
    print(f"nvidia-smi: {exc!r}")
subprocess.run([sys.executable, "-m", "gpucdp.cli", "info"])
if sys.argv[1] == "gpu":
    import cupy
    import numpy as np
    from numba import cuda
    try:
        from numba.cuda.cuda_paths import get_cuda_paths
        print({k: getattr(v, "info", v) for k, v in get_cuda_paths().items()})
    except Exception as exc:  # noqa: BLE001
        print(f"cuda paths: {exc!r}")

    @cuda.jit
    def twice(x):
        i = cuda.grid(1)
        if i < x.size:
            x[i] *= 2

    x = cupy.arange(1000, dtype=cupy.float32)
    twice[4, 256](x)
    assert float(x.sum()) == 999_000.0, "Numba kernel on a CuPy array gave the wrong sum"
    print("numba kernel on cupy: ok")
PY

step tests 240 python3 -m pytest -q -rs --durations=15 -p no:cacheprovider -m "gpu or cuda" \
    -k "not in_simulator and not to_ptx" \
    tests/test_gpu.py tests/test_gpu_fallbacks.py tests/test_cuda_kernels.py tests/test_cuda_embed.py \
    tests/test_cuda_layout.py tests/test_cuda_pairs.py
SUMMARY+=("           $(grep -E '(passed|failed|error|skipped|deselected)' "$RESULTS/tests.log" | tail -1)")
if [ -n "$GEN_PID" ]; then
    wait "$GEN_PID" || { SUMMARY+=("$(printf '%-10s %-18s' generate "FAILED (generate.log)")"); FAILED=1; }
fi
step bench $(( $(left) > 30 ? $(left) : 30 )) python3 bench/gpu_bench.py --backend "$BACKEND" \
    --sizes $SIZES $KERNEL_ARGS --workdir /tmp/gpucdp-bench --json "$RESULTS/gpu_bench.json"

echo "=== summary ($(( $(date +%s) - START ))s of ${BUDGET}s)"
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED

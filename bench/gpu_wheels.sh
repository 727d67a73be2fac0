#!/usr/bin/env bash
# Fetch, on a machine with network access, the wheels bench/gpu_check.sh needs on a GPU machine that has none.
#
# The GPU machine has CuPy, Numba (with numba-cuda), PyTorch, pandas, pyarrow, SciPy, PyYAML, rich, psutil,
# hypothesis and pytest, but not pydantic (settings) or FAISS (kNN past 5M distinct vectors without FAISS-GPU,
# and the CPU side of the CPU = GPU test). These are pure-Python or manylinux wheels for its Python 3.12 on
# x86-64, ~22 MB together; gpu_check.sh installs them with --no-index --no-deps into /tmp/site.
#
#   bash bench/gpu_wheels.sh            # writes .whl/ at the repository root (ignored by git)
#
# Pins: pydantic 2.14.4 needs pydantic-core 2.50.5 exactly, annotated-types, typing-inspection and
# typing-extensions >= 4.16 (carried too, in case the machine's is older); faiss-cpu needs numpy and packaging,
# which are there. Keep one version of each: two versions of one package stop the whole install.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
    typing-extensions==4.16.0 faiss-cpu==1.15.1
ls -l .whl

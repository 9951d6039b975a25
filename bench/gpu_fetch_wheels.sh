#!/usr/bin/env bash
# Download, on a machine with a package index, the wheels that bench/gpu_check.sh needs on
# the GPU machine and that its image lacks (it reaches no index). They land in
# bench/gpu_wheels/ (gitignored); name that folder in the device call's `carry`.
#
# The GPU image (/work/.library/device/KINDS.md) has Python 3.12 with numpy, numba,
# cupy-cuda13x, torch, pytest, pytest-xdist, hypothesis, scikit-learn, scipy, matplotlib,
# tqdm, threadpoolctl, cmake, ninja, pybind11 and scikit-build-core. Carried:
#   pybind11, scikit-build-core  the build backend, pinned to what builds here (the image's
#                                versions are not listed; these win through PYTHONPATH)
#   torchattacks                 the PGD peer of bench/test_gpu.py (pure Python; its
#                                requirements torch/torchvision/scipy/tqdm/requests are there)
#   jsonschema (+ referencing, jsonschema-specifications, rpds-py)  tests/test_study.py
# Not carried: dask[distributed] (tests/test_study.py skips its one test without it).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEST=${1:-$HERE/gpu_wheels}
PY=${PYTHON:-python3}
mkdir -p "$DEST"
rm -f "$DEST"/*.whl
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$DEST" \
  "pybind11==3.1.0" "scikit-build-core==1.1.2" "torchattacks==3.5.1" \
  "jsonschema==4.26.0" "jsonschema-specifications==2025.9.1" "referencing==0.37.0" \
  "rpds-py==0.30.0"
n=$(ls "$DEST"/*.whl | wc -l)
if [ "$n" -ne 7 ]; then
  echo "gpu_fetch_wheels: expected 7 wheels in $DEST, found $n" >&2
  exit 1
fi
du -sh "$DEST"
ls "$DEST"

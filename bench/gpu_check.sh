#!/usr/bin/env bash
# The GPU check of issue 24, for a bare GPU machine (the device tool: nvcc, CMake, ninja,
# Python 3.12 with NumPy, Numba, CuPy, PyTorch, pytest; no package index). In order:
#   env    what the machine is (nvidia-smi, nvcc, python, packages)           -> env.txt
#   build  pip-install fastmem (_core and _cuda, CUDA code for CUDA_ARCH only, -Werror)
#          into a target folder, from the carried wheels of bench/gpu_wheels/ -> build.log
#   tests  the suite against that install, from outside the source tree: default backends
#          (the `backend` fixture covers cuda with CuPy inputs)               -> tests_default.log
#          and again with FASTMEM_BACKEND=cuda                                -> tests_cuda.log
#   bench  bench/test_gpu.py: the GPU workloads next to their CPU times and peers,
#          with FLOP / byte floors                         -> bench.log, gpu_table.md, .json
#   plane  from the bench's rows: plane_regions on cuda and on the CPU, the same slices,
#          bit for bit (count and digest of patterns and vertices)       -> summary.md
# then summary.md (each stage's status, the table), printed last. Exit status: 0 only
# when every stage that ran passed. On a machine without a usable cuda backend the check
# FAILS (it would otherwise pass with every CUDA test skipped), unless GPU_CHECK_REHEARSAL=1.
#
# Device call (wheels first, here: bash bench/gpu_fetch_wheels.sh):
#   run(command="bash bench/gpu_check.sh", carry=["bench/gpu_wheels"], timeout_s=570)
# Rehearsal without a GPU:
#   GPU_CHECK_REHEARSAL=1 GPU_CHECK_SCALE=0.01 OUT=/tmp/gpu-out PYTHON=python bash bench/gpu_check.sh
#
# Settings (environment): OUT (default ./gpu_check_out), PYTHON (python3), CUDA_ARCH (90),
# GPU_CHECK_STEPS (default "env build tests bench"; a later call on the same warm machine
# may run "tests bench" on the earlier build), GPU_CHECK_WORK (/tmp/fastmem-gpu-check:
# outside the source tree, as the tests require), GPU_CHECK_SCALE (1), GPU_CHECK_CPU_SCALE
# (0.1: the CPU side of the linear workloads on a tenth of the input), per-stage time
# limits in seconds GPU_CHECK_T_BUILD (300), GPU_CHECK_T_TESTS (200, each run),
# GPU_CHECK_T_BENCH (300), GPU_CHECK_T_CONTENDER (120), all cut to end by
# GPU_CHECK_DEADLINE (540 s after the start: under the device tool's 600 s per command).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$ROOT/gpu_check_out}
PY=${PYTHON:-python3}
ARCH=${CUDA_ARCH:-90}
STEPS=${GPU_CHECK_STEPS:-env build tests bench}
WORK=${GPU_CHECK_WORK:-/tmp/fastmem-gpu-check}
REHEARSAL=${GPU_CHECK_REHEARSAL:-0}
SCALE=${GPU_CHECK_SCALE:-1}
CPU_SCALE=${GPU_CHECK_CPU_SCALE:-0.1}
T_BUILD=${GPU_CHECK_T_BUILD:-300}
T_TESTS=${GPU_CHECK_T_TESTS:-200}
T_BENCH=${GPU_CHECK_T_BENCH:-300}
T_CONTENDER=${GPU_CHECK_T_CONTENDER:-120}
DEADLINE=${GPU_CHECK_DEADLINE:-540}  # seconds: every stage ends by then, summary written
PREFIX=$WORK/prefix
SITE=$WORK/site
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
[ -d /usr/local/cuda/bin ] && export PATH=$PATH:/usr/local/cuda/bin
case "$WORK/" in "$ROOT/"*)
  echo "gpu_check: GPU_CHECK_WORK must lie outside the source tree $ROOT" >&2
  exit 2
  ;;
esac

STATUS=()  # "stage: PASS|FAIL (why)" lines for summary.md
FAILED=0
note() { STATUS+=("$1"); echo "== gpu_check: $1"; }
fail() {
  note "$1"
  FAILED=1
}
has_step() { [[ " $STEPS " == *" $1 "* ]]; }
elapsed() { echo "$(($(date +%s) - START))s"; }
# A stage's time limit: its own, cut to what is left before DEADLINE (less 15 s for the
# summary); 0 when under 20 s are left.
limit() {
  local left=$((DEADLINE - ($(date +%s) - START) - 15))
  local t=$(($1 < left ? $1 : left))
  echo $((t < 20 ? 0 : t))
}
START=$(date +%s)

# Carried wheels (pip download, bench/gpu_fetch_wheels.sh); the image's packages otherwise.
if ls "$ROOT"/bench/gpu_wheels/*.whl >/dev/null 2>&1; then
  # The wheels are fetched for the device's Python (3.12); another interpreter (a
  # rehearsal) takes the pure-Python ones only.
  TAG=$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
  WHL=()
  for w in "$ROOT"/bench/gpu_wheels/*.whl; do
    case "$w" in *-py3-none-any.whl | *-"$TAG"-*) WHL+=("$w") ;; *) echo "gpu_check: $TAG cannot use $(basename "$w")" ;; esac
  done
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "${WHL[@]}" ||
    { echo "gpu_check: installing the carried wheels failed" >&2; exit 1; }
  WHEELS="installed: $(for w in "${WHL[@]}"; do basename "$w"; done | tr '\n' ' ')"
else
  WHEELS="none carried (bench/gpu_wheels/ is empty: torchattacks and jsonschema may be missing)"
fi
export PYTHONPATH=$PREFIX:$SITE

# ------------------------------------------------------------------ env
if has_step env; then
  {
    echo "date: $(date -u)"
    echo "host: $(uname -a)"
    echo "cores: $(nproc)"
    echo "wheels: $WHEELS"
    echo "--- nvidia-smi"
    nvidia-smi 2>&1 || echo "(nvidia-smi failed)"
    echo "--- nvcc"
    nvcc --version 2>&1 || echo "(no nvcc on PATH)"
    echo "--- python"
    "$PY" - <<'PY' 2>&1
import importlib, sys
print(sys.version)
for m in ("numpy", "numba", "cupy", "torch", "pybind11", "scikit_build_core", "pytest",
          "xdist", "hypothesis", "sklearn", "torchattacks", "jsonschema"):
    try:
        mod = importlib.import_module(m)
        print(f"{m} {getattr(mod, '__version__', '?')} ({mod.__file__})")
    except Exception as exc:
        print(f"{m}: not importable ({type(exc).__name__}: {exc})")
PY
  } >"$OUT/env.txt" 2>&1
  note "env: PASS (env.txt)"
fi

# ------------------------------------------------------------------ build
if has_step build && [ "$(limit "$T_BUILD")" = 0 ]; then
  fail "build: FAIL (no time left before GPU_CHECK_DEADLINE=$DEADLINE)"
elif has_step build; then
  rm -rf "$PREFIX"
  echo "== gpu_check: building for sm_$ARCH into $PREFIX ($(elapsed))"
  if timeout "$(limit "$T_BUILD")" "$PY" -m pip install -v --no-index --no-deps --no-build-isolation \
    --target "$PREFIX" "$ROOT" \
    -Ccmake.define.FASTMEM_CUDA=ON -Ccmake.define.FASTMEM_WERROR=ON \
    -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="$ARCH" -Cbuild-dir="$WORK/build" \
    >"$OUT/build.log" 2>&1; then
    # The built module must hold machine code for the requested architecture.
    CUDA_SO=$(ls "$PREFIX"/fastmem/_cuda*.so 2>/dev/null | head -1)
    if [ -z "$CUDA_SO" ]; then
      fail "build: FAIL (no fastmem/_cuda*.so installed; see build.log)"
    elif command -v cuobjdump >/dev/null 2>&1; then
      if cuobjdump --list-elf "$CUDA_SO" 2>&1 | tee -a "$OUT/build.log" | grep -q "sm_$ARCH"; then
        note "build: PASS (sm_$ARCH machine code in $(basename "$CUDA_SO"), $(elapsed))"
      else
        fail "build: FAIL (no sm_$ARCH code in $(basename "$CUDA_SO"); see build.log)"
      fi
    elif grep -Eq "^CMAKE_CUDA_ARCHITECTURES:[A-Z]+=$ARCH\$" "$WORK/build/CMakeCache.txt"; then
      note "build: PASS (CMAKE_CUDA_ARCHITECTURES=$ARCH; no cuobjdump to read the code, $(elapsed))"
    else
      fail "build: FAIL (CMAKE_CUDA_ARCHITECTURES is not $ARCH in the build)"
    fi
  else
    fail "build: FAIL (exit $?; the end of build.log follows)"
    tail -30 "$OUT/build.log"
  fi
fi
if [ ! -d "$PREFIX/fastmem" ]; then
  fail "install: FAIL (nothing installed in $PREFIX: run the build step)"
  STEPS=""  # nothing below can run
fi

# The cuda backend must be usable on a GPU machine; the tests would skip silently otherwise.
if [ -n "$STEPS" ]; then
  (cd "$WORK" && "$PY" - <<'PY') >"$WORK/backends.txt" 2>&1
import os, fastmem
print("fastmem from", os.path.dirname(fastmem.__file__))
for info in fastmem.backends().values():
    print("  ", info)
raise SystemExit(0 if fastmem.backends()["cuda"].available else 3)
PY
  CUDA_OK=$?
  cat "$WORK/backends.txt" | tee -a "$OUT/env.txt"
  if [ "$CUDA_OK" -eq 0 ]; then
    note "cuda backend: PASS (available)"
  elif [ "$REHEARSAL" = 1 ]; then
    note "cuda backend: unavailable, REHEARSAL (cuda tests and GPU benchmarks skip)"
  else
    fail "cuda backend: FAIL (unavailable on this machine: $(grep -m1 'cuda:' "$WORK/backends.txt"))"
  fi
fi

# ------------------------------------------------------------------ tests
run_suite() {  # name, log, env arguments (-u NAME, NAME=value)...
  local name=$1 log=$2
  shift 2
  local xd=()
  if "$PY" -c "import xdist" 2>/dev/null; then xd=(-n "$(($(nproc) < 8 ? $(nproc) : 8))"); fi
  local t
  t=$(limit "$T_TESTS")
  if [ "$t" = 0 ]; then
    fail "tests ($name): FAIL (no time left before GPU_CHECK_DEADLINE=$DEADLINE)"
    return
  fi
  echo "== gpu_check: tests ($name) $(elapsed), limit ${t}s"
  (cd "$WORK" && env "$@" FASTMEM_REQUIRE_INSTALLED=1 timeout "$t" \
    "$PY" -m pytest -q -p no:cacheprovider -rfEs "${xd[@]}" --junitxml="$WORK/$name.xml" \
    "$ROOT/tests") >"$OUT/$log" 2>&1
  local rc=$?
  # How many tests ran on the cuda backend (ids with "cuda") and how they ended.
  local cuda_counts
  cuda_counts=$("$PY" - "$WORK/$name.xml" <<'PY' 2>/dev/null
import re, sys, xml.etree.ElementTree as ET
try:
    cases = ET.parse(sys.argv[1]).getroot().iter("testcase")
except Exception:
    print("? ? ?")
    raise SystemExit
n = {"passed": 0, "failed": 0, "skipped": 0}
for c in cases:
    if not re.search(r"[\[-]cuda[\]-]", c.get("name", "")):  # the backend param is cuda
        continue
    kind = "failed" if c.find("failure") is not None or c.find("error") is not None else (
        "skipped" if c.find("skipped") is not None else "passed")
    n[kind] += 1
print(n["passed"], n["failed"], n["skipped"])
PY
  )
  read -r n_pass n_fail n_skip <<<"$cuda_counts"
  local tail_line
  tail_line=$(grep -E "(passed|failed|error)" "$OUT/$log" | tail -1)
  local what="$tail_line; tests on the cuda backend: $n_pass passed, $n_fail failed, $n_skip skipped"
  if [ "$rc" -eq 124 ]; then
    fail "tests ($name): FAIL (timed out after ${t}s; $what)"
  elif [ "$rc" -ne 0 ]; then
    fail "tests ($name): FAIL (exit $rc; $what)"
  elif [ "$REHEARSAL" != 1 ] && [ "${n_pass:-0}" = 0 ]; then
    fail "tests ($name): FAIL (no test ran on the cuda backend; $what)"
  else
    note "tests ($name): PASS ($what)"
  fi
}
if has_step tests; then
  run_suite default tests_default.log -u FASTMEM_BACKEND
  if [ "${CUDA_OK:-1}" -eq 0 ] || [ "$REHEARSAL" != 1 ]; then
    run_suite cuda_env tests_cuda.log FASTMEM_BACKEND=cuda
  else
    note "tests (cuda_env): not run (REHEARSAL without a cuda backend: FASTMEM_BACKEND=cuda cannot run)"
  fi
fi

# ------------------------------------------------------------------ bench
T=$(limit "$T_BENCH")
if has_step bench && [ "$T" = 0 ]; then
  fail "bench: FAIL (no time left before GPU_CHECK_DEADLINE=$DEADLINE)"
elif has_step bench; then
  echo "== gpu_check: benchmarks $(elapsed), limit ${T}s"
  extra=()
  [ "$REHEARSAL" = 1 ] && extra=(--allow-no-gpu)
  # test_gpu.py skips the contenders it has no time for and still writes its table.
  (cd "$WORK" && timeout "$T" "$PY" "$ROOT/bench/test_gpu.py" --out "$OUT" \
    --scale "$SCALE" --cpu-scale "$CPU_SCALE" --timeout "$T_CONTENDER" \
    --budget "$((T - 10))" "${extra[@]}") >"$OUT/bench.log" 2>&1
  rc=$?
  if [ "$rc" -eq 0 ]; then
    note "bench: PASS (gpu_table.md)"
  elif [ "$rc" -eq 124 ]; then
    fail "bench: FAIL (timed out after ${T}s; see bench.log)"
  else
    fail "bench: FAIL (exit $rc; see bench.log and gpu_table.md)"
  fi
fi

# ------------------------------------------------------------------ plane
# The exact 2-D slices (issue 22): the bench's plane rows, cuda and the CPU on the same
# slices, must agree bit for bit (region count and the digest of patterns and vertices).
if has_step bench; then
  plane=$("$PY" - "$OUT/gpu_results.json" <<'PY' 2>&1
import json, sys
try:
    rows = json.load(open(sys.argv[1]))["rows"]
except Exception as e:
    print("MISSING", f"no readable gpu_results.json ({e.__class__.__name__})")
    raise SystemExit
by = {r.get("contender"): r for r in rows if r.get("workload") == "plane"}
cu, cpu = by.get("cuda", {}), by.get("cpu", {})
if "value" not in cu or "value" not in cpu:
    print("MISSING", cu.get("error", "no cuda row"), "/", cpu.get("error", "no cpu row"))
elif cu["value"] == cpu["value"]:
    print("EQUAL", cu["value"]["regions"], "regions, digest", cu["value"]["digest"])
else:
    print("DIFFER", json.dumps(cu["value"]), "vs", json.dumps(cpu["value"]))
PY
  )
  case "$plane" in
    EQUAL*) note "plane: PASS (cuda and cpu identical: ${plane#EQUAL })" ;;
    MISSING*)
      if [ "$REHEARSAL" = 1 ]; then
        note "plane: not compared (${plane#MISSING })"
      else
        fail "plane: FAIL (${plane#MISSING })"
      fi
      ;;
    *) fail "plane: FAIL (cuda and cpu differ: ${plane#DIFFER })" ;;
  esac
fi

# ------------------------------------------------------------------ summary
{
  echo "# gpu_check $(date -u +%FT%TZ) ($(elapsed))"
  echo
  echo "device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo none)"
  echo "steps: ${GPU_CHECK_STEPS:-env build tests bench}; rehearsal: $REHEARSAL; wheels: $WHEELS"
  echo
  for s in "${STATUS[@]}"; do echo "- $s"; done
  echo
  [ -f "$OUT/gpu_table.md" ] && cat "$OUT/gpu_table.md"
} >"$OUT/summary.md"
cat "$OUT/summary.md"
if [ "$FAILED" -ne 0 ]; then
  echo "gpu_check: FAILED (see above and the logs in $OUT)" >&2
  exit 1
fi
echo "gpu_check: all stages passed"

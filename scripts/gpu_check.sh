#!/usr/bin/env bash
# GPU check (issues 7, 27): on a machine with one CUDA GPU (H100/H200 class), in under 8 minutes (part caps add
# up to 470 s), run and assert
#   tests   the tests on CUDA (-k cuda; conftest.py adds a cuda case to every test taking `device`): the count is
#           printed, and a skipped CUDA test fails the part
#   nb01    notebook 01, real profile             nb02    notebook 02, real profile
#   nb03    notebook 03, real profile on all of MNIST with the fast path, 5 epochs of the main run instead of 250
#           (strong asserts off), its time extrapolated to 250 epochs
#   nb04    notebook 04, a stated slice: the CI profile (every trick and cell, fewer steps and seeds)
#   nb05    notebook 05, the CI profile on the GPU: a slice of every run (transposed, upsample, width 32,
#           conditional, Fashion-MNIST), the fast path on (FAST = device.type == "cuda")
#   probe   scripts/gpu_probe.py: capture of every model and loss, fast vs eager within rtol 5e-3 over 20 steps,
#           dcgan_run(fast=True) interrupt-resume and reload, a fast checkpoint stepped on the CPU, host syncs
#   bench   benchmarks/train_speed.py --quick, asserting r3 (fast vs eager, MLP) >= 5 and r4 (DCGAN) >= 2
#   seeds   benchmarks/seed_batching.py, 8 seeds batched vs a loop, asserting a speedup >= 4
# GAN_FAST_STRICT=1: a failed CUDA-graph capture raises instead of training eagerly, so no notebook passes on the
# eager fallback; a notebook output saying "training eagerly" fails its part too (conditional runs excepted).
# Any part that fails, is skipped or runs out of time fails the script (exit 1). The executed notebooks, each
# part's log and a markdown summary (GPU, versions, per-part result and time, r3, r4, seed batching, syncs) go
# to the folder of the summary file: the first argument, else $OUT/gpu_check.md, else ./gpu_check.md.
#
# Needs torch with CUDA, and nbclient, nbformat and ipykernel. Where they are missing (a machine
# without Jupyter and without network), the wheels in the ignored folder .whl/ are installed into
# a temporary folder; make them once on a machine with pip (Python 3.12 on x86-64 Linux here):
#   python3 -m pip download -d .whl --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 nbclient nbformat ipykernel jupyter_client ipywidgets
# (then delete the wheels of packages that the GPU machine already has, e.g. attrs, packaging,
# psutil, pygments, python-dateutil, tzdata, typing-extensions).
# MNIST: $GAN_DATA_DIR, else the ignored folder .gpu-data/, filled once with all of MNIST and Fashion-MNIST:
#   mkdir -p .gpu-data && cp -r ../shared/mnist-full/* .gpu-data/
# else the repository's data/.
# GPU_CHECK_PARTS="tests nb01 nb02 nb03 nb04 nb05 probe bench seeds" picks parts (a dry run of fewer parts
# still fails: every part is required unless GPU_CHECK_PARTS is set); GPU_CHECK_BUDGET (default 475 s) bounds
# the whole run; GPU_CHECK_PROFILE=ci runs every notebook in the CI profile.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET:-475}                 # seconds for everything; each part has its cap
PARTS=${GPU_CHECK_PARTS:-tests nb01 nb02 nb03 nb04 nb05 probe bench seeds}
SUMMARY=${1:-${OUT:+$OUT/gpu_check.md}}
SUMMARY=${SUMMARY:-$REPO/gpu_check.md}
LOGS=$(cd "$(dirname "$SUMMARY")" && pwd)
PY=${PYTHON:-python3}
TMP=$(mktemp -d /tmp/gpu_check.XXXX)
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 MPLBACKEND=Agg GAN_FAST_STRICT=1
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu_check: torch sees no CUDA GPU here; nothing to check" >&2
  [ "${GPU_CHECK_ALLOW_CPU:-0}" = 1 ] || exit 2
fi
if ! "$PY" -c "import nbclient, nbformat, ipykernel" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$TMP/site" .whl/*.whl \
      || echo "gpu_check: installing the wheels of .whl/ failed" >&2
    export PYTHONPATH="$PYTHONPATH:$TMP/site"   # after the repository, and after what is installed
  fi
fi
# A kernelspec that starts this python (with PYTHONPATH), whatever Jupyter knows of.
mkdir -p "$TMP/jupyter/kernels/python3"
printf '{"argv": ["%s", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "Python 3", "language": "python"}\n' \
  "$(command -v "$PY")" > "$TMP/jupyter/kernels/python3/kernel.json"
export JUPYTER_PATH="$TMP/jupyter" JUPYTER_RUNTIME_DIR="$TMP/runtime" IPYTHONDIR="$TMP/ipython"
if [ -z "${GAN_DATA_DIR:-}" ] && [ -d .gpu-data/MNIST/raw ]; then export GAN_DATA_DIR="$REPO/.gpu-data"; fi

ROWS=()
NB_NOTE='^TOTAL|^cell [0-9]+: (ERROR|STOPPED)|^[A-Za-z_.]*(Error|Exception): |^--sub'
run_part() {   # run_part ID LABEL CAP_SECONDS COMMAND...: time it, log it to gpu_check_ID.log
  local id=$1 name=$2 cap=$3; shift 3
  local left=$((BUDGET - ($(date +%s) - START)))
  [ "$cap" -gt "$left" ] && cap=$left
  if [ "$cap" -lt 20 ]; then ROWS+=("| $name | FAIL (skipped: out of time) | - | $left s left |"); return; fi
  local t0=$(date +%s) rc
  timeout -k 10 "$cap" "$@" > "$LOGS/gpu_check_$id.log" 2>&1; rc=$?
  local dt=$(( $(date +%s) - t0 )) result=pass
  [ $rc -ne 0 ] && result="FAIL (exit $rc)"
  [ $rc -eq 124 ] && result="FAIL (stopped after ${cap} s)"
  [ -n "${MUST:-}" ] && ! grep -qE "$MUST" "$LOGS/gpu_check_$id.log" && result="FAIL (no line matching $MUST)"
  [ -n "${MUST_NOT:-}" ] && grep -qE "$MUST_NOT" "$LOGS/gpu_check_$id.log" && result="FAIL (a line matches $MUST_NOT)"
  local note   # the lines of the log that NOTE_PATTERN picks, colour codes and table bars removed
  note=$(sed 's/\x1b\[[0-9;]*m//g' "$LOGS/gpu_check_$id.log" | grep -E "${NOTE_PATTERN:-^$}" | tail -3 | tr '|' '/' | paste -sd ';' | cut -c1-240)
  ROWS+=("| $name | $result | ${dt} s | $note |")
  echo "gpu_check: $name: $result in ${dt} s"
}
nb() {   # nb PROFILE NOTEBOOK: the command that runs a notebook (timeout cannot run a function)
  echo env GAN_PROFILE="${GPU_CHECK_PROFILE:-$1}" "$PY" scripts/run_nb.py "notebooks/$2.ipynb" "$LOGS/$2.$1.ipynb" --timeout 300
}
export GAN_CHECKPOINT_DIR="$TMP/checkpoints"     # a warm machine never resumes an earlier call's run
export GPU_CHECK_SLICE="$TMP/nb03_slice.txt"   # notebook 03's main-run cell writes its timing here
read -r -d '' NB03_TIMING <<'PY'
G_best, D_best = watch.best_models(G, D); open(os.environ["GPU_CHECK_SLICE"], "w").write(f"main run: {EPOCHS} epochs, {history['step'][-1]} G steps in {watch.seconds:.1f} s ({1000 * watch.seconds / history['step'][-1]:.2f} ms per G step incl. scoring); 250 epochs would take about {250 / EPOCHS * watch.seconds / 60:.1f} min")
PY
eager_lines() {   # eager_lines NOTEBOOK: an executed notebook's "training eagerly" lines, conditional runs excepted
  grep -o 'fast path: [^"\\]*training eagerly' "$LOGS/$1" 2>/dev/null | grep -v 'conditional GAN are not captured'
}
nb_part() {   # nb_part ID LABEL CAP PROFILE NOTEBOOK [run_nb.py options]: a notebook, then no eager fallback in it
  local id=$1 label=$2 cap=$3 profile=$4 notebook=$5; shift 5
  NOTE_PATTERN="$NB_NOTE" run_part "$id" "$label" "$cap" $(nb "$profile" "$notebook") "$@"
  local eager; eager=$(eager_lines "$notebook.$profile.ipynb" | head -1)
  [ -n "$eager" ] && ROWS+=("| $label: fast path | FAIL | - | $eager |")
}
threshold() {   # threshold ID KEY MIN: the log's last KEY=<value> is at least MIN, else a FAIL row
  local value; value=$(grep -oE "$2=[0-9.]+" "$LOGS/gpu_check_$1.log" | tail -1 | cut -d= -f2)
  if [ -n "$value" ] && awk "BEGIN {exit !($value >= $3)}"; then ROWS+=("| $1: $2 | pass | - | $value >= $3 |")
  else ROWS+=("| $1: $2 | FAIL | - | ${value:-missing} (target >= $3) |"); fi
}
for part in $PARTS; do
  case $part in   # caps: 80 + 35 + 35 + 60 + 50 + 70 + 60 + 50 + 30 = 470 s
    tests) NOTE_PATTERN='^[0-9]+ (passed|failed|error|skipped|deselected)' MUST='[0-9]+ passed' \
             MUST_NOT='[0-9]+ skipped|SKIPPED' run_part tests "tests on CUDA" 80 \
             "$PY" -m pytest -q -rs -o addopts= -p no:cacheprovider tests -k cuda ;;
    nb01)  nb_part nb01 "01 real" 35 real 01_gaussian_1d ;;
    nb02)  nb_part nb02 "02 real" 35 real 02_line_2d ;;
    nb03)  nb_part nb03 "03 real, 5 epochs, fast" 60 real 03_mnist_mlp_gan \
             --sub "${GPU_CHECK_NB03_SUB:-EPOCHS = gu.by_profile(real=250,=>EPOCHS = gu.by_profile(real=5,}" \
             --sub 'ASSERT_STRONG = PROFILE == "real"=>ASSERT_STRONG = False' \
             --sub 'gu.by_profile(real=0.25, ci=0.95) * score_init=>0.95 * score_init' \
             --sub "G_best, D_best = watch.best_models(G, D)=>$NB03_TIMING"
           if [ -s "$GPU_CHECK_SLICE" ]; then ROWS+=("| 03: 250 epochs extrapolated | - | - | $(cat "$GPU_CHECK_SLICE") |")
           else ROWS+=("| 03: 250 epochs extrapolated | FAIL | - | the main run wrote no timing |"); fi ;;
    nb04)  nb_part nb04 "04 ci profile (stated slice)" 50 ci 04_stabilizing_gans ;;
    nb05)  nb_part nb05 "05 ci profile, every run, fast" 70 ci 05_dcgan ;;
    probe) NOTE_PATTERN='^(FAIL|probe:)' MUST='^probe: all passed' run_part probe "probe" 60 "$PY" scripts/gpu_probe.py
           line=$(grep -E '^ok   host syncs' "$LOGS/gpu_check_probe.log" | paste -sd ';' | cut -c1-400)
           ROWS+=("| probe: host syncs per step | - | - | ${line:-none measured} |") ;;
    bench) NOTE_PATTERN='^(gan_utils_vs|gpu_fast|r3|r4)' run_part bench "benchmark" 50 "$PY" benchmarks/train_speed.py --quick
           threshold bench gpu_fast_vs_eager 5; threshold bench gpu_dcgan_fast_vs_eager 2 ;;
    seeds) NOTE_PATTERN='^(median|speedup=)' run_part seeds "seed batching" 30 \
             "$PY" benchmarks/seed_batching.py --device cuda --steps 100 --repeats 3
           threshold seeds speedup 4 ;;
    *) ROWS+=("| $part | FAIL | - | unknown part (use tests nb01 nb02 nb03 nb04 nb05 probe bench seeds) |") ;;
  esac
done
for part in tests nb01 nb02 nb03 nb04 nb05 probe bench seeds; do   # a part left out is a part not checked
  [[ " $PARTS " == *" $part "* ]] || [ -n "${GPU_CHECK_PARTS:-}" ] || ROWS+=("| $part | FAIL (not run) | - | |")
done

GPU=$("$PY" -c "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" 2>/dev/null)
VERSIONS=$("$PY" -c "import platform, torch; print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, Python {platform.python_version()}')" 2>/dev/null)
{
  echo "# GPU check, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "$GPU; $VERSIONS; git HEAD $(git rev-parse --short HEAD 2>/dev/null || echo unknown); data ${GAN_DATA_DIR:-data/}."
  echo "Total $(( $(date +%s) - START )) s (budget $BUDGET s). Logs: gpu_check_<part>.log beside this file."
  echo
  echo "| part | result | time | note |"
  echo "|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
} > "$SUMMARY"
cat "$SUMMARY"
grep -q FAIL "$SUMMARY" && exit 1 || exit 0

#!/usr/bin/env bash
# GPU check (issue 7): on a machine with a CUDA GPU, in under 8 minutes, run
#   1. the tests on CUDA            python -m pytest tests -k cuda (conftest.py adds a cuda case to
#                                   every test that takes `device`)
#   2. notebooks 01 and 02          real profile, top to bottom
#   3. notebook 03                  CI profile, then a timed slice of the real profile (5 epochs of
#                                   the main run instead of 250, strong asserts off)
#   4. benchmarks/train_speed.py    --quick: eager, hand-written, tutorial, fast path, DCGAN
#   5. benchmarks/seed_batching.py  8 toy seeds batched vs a loop over them (issue 11: >= 4x)
# and write a markdown summary (GPU, date, time and pass/fail of each part) to the file given as
# the first argument, else $OUT/gpu_check.md, else ./gpu_check.md; each part's log lies beside it.
#
# Needs torch with CUDA, and nbclient, nbformat and ipykernel. Where they are missing (a machine
# without Jupyter and without network), the wheels in the ignored folder .whl/ are installed into
# a temporary folder; make them once on a machine with pip (Python 3.12 on x86-64 Linux here):
#   python3 -m pip download -d .whl --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 nbclient nbformat ipykernel jupyter_client ipywidgets
# (then delete the wheels of packages that the GPU machine already has, e.g. attrs, packaging,
# psutil, pygments, python-dateutil, tzdata, typing-extensions).
# MNIST: $GAN_DATA_DIR, else the ignored folder .gpu-data/, filled once with all of MNIST (11 MB gzip):
#   mkdir -p .gpu-data/MNIST/raw && cp ../shared/mnist-full/MNIST/raw/*.gz .gpu-data/MNIST/raw/
# else the repository's data/.
# GPU_CHECK_PARTS="tests nb01 nb02 nb03 bench seeds" picks parts; GPU_CHECK_BUDGET (default 470 s)
# bounds the whole run; GPU_CHECK_PROFILE=ci runs every notebook in the CI profile (a dry run).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET:-470}                 # seconds for everything; each part gets a share
PARTS=${GPU_CHECK_PARTS:-tests nb01 nb02 nb03 bench seeds}
SUMMARY=${1:-${OUT:+$OUT/gpu_check.md}}
SUMMARY=${SUMMARY:-$REPO/gpu_check.md}
LOGS=$(cd "$(dirname "$SUMMARY")" && pwd)
PY=${PYTHON:-python3}
TMP=$(mktemp -d /tmp/gpu_check.XXXX)
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 MPLBACKEND=Agg
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
  if [ "$cap" -lt 20 ]; then ROWS+=("| $name | skipped | - | out of time |"); return; fi
  local t0=$(date +%s) rc
  timeout -k 10 "$cap" "$@" > "$LOGS/gpu_check_$id.log" 2>&1; rc=$?
  local dt=$(( $(date +%s) - t0 )) result=pass
  [ $rc -ne 0 ] && result="FAIL (exit $rc)"
  [ $rc -eq 124 ] && result="FAIL (stopped after ${cap} s)"
  local note   # the lines of the log that NOTE_PATTERN picks, colour codes and table bars removed
  note=$(sed 's/\x1b\[[0-9;]*m//g' "$LOGS/gpu_check_$id.log" | grep -E "${NOTE_PATTERN:-^$}" | tail -3 | tr '|' '/' | paste -sd ';' | cut -c1-240)
  ROWS+=("| $name | $result | ${dt} s | $note |")
  echo "gpu_check: $name: $result in ${dt} s"
}
nb() {   # nb PROFILE NOTEBOOK: the command that runs a notebook (timeout cannot run a function)
  echo env GAN_PROFILE="${GPU_CHECK_PROFILE:-$1}" "$PY" scripts/run_nb.py "notebooks/$2.ipynb" "$TMP/$2.$1.ipynb" --timeout 300
}
export GAN_CHECKPOINT_DIR="$TMP/checkpoints"     # a warm machine never resumes an earlier call's run
export GPU_CHECK_SLICE="$TMP/nb03_slice.txt"   # notebook 03's main-run cell writes its timing here
read -r -d '' NB03_TIMING <<'PY'
G_best, D_best = watch.best_models(G, D); open(os.environ["GPU_CHECK_SLICE"], "w").write(f"main run: {EPOCHS} epochs, {history['step'][-1]} G steps in {watch.seconds:.1f} s ({1000 * watch.seconds / history['step'][-1]:.2f} ms per G step incl. scoring); 250 epochs would take about {250 / EPOCHS * watch.seconds / 60:.1f} min")
PY
for part in $PARTS; do
  case $part in
    tests) NOTE_PATTERN='^[0-9]+ (passed|failed|error|skipped|deselected)' run_part tests "tests on CUDA" 150 \
             "$PY" -m pytest -q -o addopts= -p no:cacheprovider tests -k cuda ;;
    seeds) NOTE_PATTERN='^(median|speedup=)' run_part seeds "seed batching" 60 \
             "$PY" benchmarks/seed_batching.py --device cuda --steps 100 --repeats 3 ;;
    nb01)  NOTE_PATTERN="$NB_NOTE" run_part nb01 "01 real" 90 $(nb real 01_gaussian_1d) ;;
    nb02)  NOTE_PATTERN="$NB_NOTE" run_part nb02 "02 real" 90 $(nb real 02_line_2d) ;;
    nb03)  NOTE_PATTERN="$NB_NOTE" run_part nb03ci "03 ci" 90 $(nb ci 03_mnist_mlp_gan)
           NOTE_PATTERN="$NB_NOTE" run_part nb03real "03 real, 5 epochs" 150 \
             $(nb real 03_mnist_mlp_gan) --sub "${GPU_CHECK_NB03_SUB:-EPOCHS = gu.by_profile(real=250,=>EPOCHS = gu.by_profile(real=5,}" \
             --sub 'ASSERT_STRONG = PROFILE == "real"=>ASSERT_STRONG = False' \
             --sub 'gu.by_profile(real=0.25, ci=0.95) * score_init=>0.95 * score_init' \
             --sub "G_best, D_best = watch.best_models(G, D)=>$NB03_TIMING"
           [ -s "$GPU_CHECK_SLICE" ] && ROWS+=("| 03 real, 5 epochs: timing | - | - | $(cat "$GPU_CHECK_SLICE") |") ;;
    bench) NOTE_PATTERN='^(gan_utils_vs|gpu_fast)' run_part bench "benchmark" 120 "$PY" benchmarks/train_speed.py --quick
           line=$(grep -E '^gpu_fast_vs_eager' "$LOGS/gpu_check_bench.log" | tail -1)
           [ -n "$line" ] && ROWS+=("| bench: fast path | - | - | $line |") ;;
    *) echo "gpu_check: unknown part $part (use tests nb01 nb02 nb03 bench seeds)" >&2 ;;
  esac
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

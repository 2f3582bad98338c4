#!/usr/bin/env bash
# The GPU benchmarks on a CUDA machine without network, within a lent session's 15 minutes of device time.
#
#   bench/gpu/fetch_wheels.sh      # first, here (network): the wheels the run needs -> bench/gpu/wheels/
#   bench/gpu/run.sh next          # on the GPU machine, with bench/gpu/wheels carried along: ONE call of at most
#                                  #   9 minutes (bench/gpu/next.py): installs the wheels, then runs the most
#                                  #   valuable cases of bench/gpu/cases.py not yet measured on this card (read
#                                  #   from bench/results/*.json), building only the models they need, and
#                                  #   writes $OUT/<card>-<date>-<time>.json after every row. Commit that file to
#                                  #   bench/results/ and run bench/report.py: the next session continues from it.
#   bench/gpu/run.sh next --list   # here, no torch needed: what a call on an H100 would run now
#   bench/gpu/run.sh next --cpu-tiny [--budget-s S]
#                                  # here, with .venv: the same selection, resume, JSON and README table at tiny
#                                  #   size on the CPU (the JSON and a regenerated copy of the README go to $OUT,
#                                  #   default ${TMPDIR:-/tmp}/video-gen-next-cpu-tiny; the README is never touched)
#
# The older modes, each a whole call and no longer needed for a lent session (`next` covers their cases):
#   bench/gpu/run.sh part1         # (~8 minutes) every gpu_svd.py case at --tiny size on CUDA, then the headline
#                                  #   at full size (seed, default, seed-capped, capped), then bench/ff_chunking.py
#   bench/gpu/run.sh part2         # (~9 minutes): plan:group, compile, plan:model, plan:none, channels-last,
#                                  #   plan:sequential at full size
#   bench/gpu/run.sh tiny          # the tiny CUDA pass alone; `install`: the wheels alone
#   bench/gpu/run.sh wan           # bench/gpu_wan.py: tiny Wan on CUDA, then Wan 2.2 TI2V-5B and Wan 2.1 I2V 14B
#                                  #   480P at full size (random bf16), uncapped and under 12 GiB -> gpu_wan*.json
#   bench/gpu/run.sh ltx           # bench/gpu_ltx.py: tiny on CUDA, then the 2B and 13B distilled at 161 frames
#                                  #   768x512, capped at 12 GiB and not (-> gpu_ltx-*.json)
#   bench/gpu/run.sh --cpu-tiny    # here, with .venv: every gpu_svd.py case at tiny size on the CPU
#
# Full size means the real architectures with random weights (the real FLOPs and bytes). The old modes write
# gpu_svd-*.json / gpu_wan-*.json / gpu_ltx-*.json to $OUT (default bench/results/), each rewritten after every
# case, and stop starting cases ~100 s before their limit ($VIDEO_GEN_BENCH_LIMIT_S, default 570 s).
#
# The GPU machine has Python 3.12, PyTorch, transformers 5.17 and accelerate 1.15 but no diffusers,
# imageio-ffmpeg or gradio: the packages of bench/gpu/requirements.txt that are missing (or do not match)
# are installed from bench/gpu/wheels/ with pip --no-index --no-deps into a folder of their own, and
# this repository is used through PYTHONPATH (nothing is installed into the machine's Python). Random models
# are built in $VIDEO_GEN_BENCH_MODELS (default /tmp/video-gen-bench-models) and reused while the machine stays up.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
MODE=${1:-}
OUT_GIVEN=${OUT:-}
OUT=${OUT:-$REPO/bench/results}
LIMIT_S=${VIDEO_GEN_BENCH_LIMIT_S:-570}
MODELS=${VIDEO_GEN_BENCH_MODELS:-${TMPDIR:-/tmp}/video-gen-bench-models}
SITE=${VIDEO_GEN_BENCH_SITE:-${TMPDIR:-/tmp}/video-gen-bench-site}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1
export VIDEO_GEN_CACHE_DIR=${VIDEO_GEN_CACHE_DIR:-${TMPDIR:-/tmp}/video-gen-bench-cache}
mkdir -p "$OUT"

remaining() { echo $(( LIMIT_S - SECONDS )); }

# time_for NAME MAX_S: the seconds a step may take (MAX_S, or less if the part has less left); fails, saying
# so, when too little is left to start it
time_for() {
    local left
    left=$(remaining)
    (( left < $2 )) || left=$2
    if (( left < 40 )); then
        echo "== $1: not run, the part's time is spent" >&2
        return 1
    fi
    echo "$left"
}

# bench NAME MAX_S ARGS...: one call of gpu_svd.py, writing $OUT/gpu_svd-NAME.json, within MAX_S and the part's limit
bench() {
    local name=$1 max_s=$2 left
    shift 2
    left=$(time_for "$name" "$max_s") || return 0
    echo "== $name (at most $left s): gpu_svd.py $*"
    timeout --signal=INT --kill-after=15 "$left" "$PY" bench/gpu_svd.py --out "$OUT/gpu_svd-$name.json" \
        --budget-s $(( left > 200 ? left - 100 : left / 2 )) "$@"
    local status=$?
    (( status == 0 )) || echo "== $name ended with status $status (its JSON keeps the rows it finished)"
}

# script NAME MAX_S COMMAND...: another measurement, its output kept in $OUT/NAME.txt
script() {
    local name=$1 max_s=$2 left
    shift 2
    left=$(time_for "$name" "$max_s") || return 0
    echo "== $name (at most $left s): $*"
    timeout --signal=INT --kill-after=15 "$left" "$@" 2>&1 | tee "$OUT/$name.txt"
}

# ltx_bench NAME MAX_S ARGS...: one call of gpu_ltx.py, writing $OUT/gpu_ltx-NAME.json
ltx_bench() {
    local name=$1 max_s=$2 left
    shift 2
    left=$(time_for "$name" "$max_s") || return 0
    echo "== $name (at most $left s): gpu_ltx.py $*"
    timeout --signal=INT --kill-after=15 "$left" "$PY" bench/gpu_ltx.py --out "$OUT/gpu_ltx-$name.json" "$@"
    local status=$?
    (( status == 0 )) || echo "== $name ended with status $status (its JSON keeps the rows it finished)"
}

install_wheels() {
    local need
    mkdir -p "$SITE"
    export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
    # Column 1 of requirements.txt: what is missing or does not match
    need=$(grep -v '^#' bench/gpu/requirements.txt | awk 'NF {print $1}' | "$PY" -c '
import sys
from importlib.metadata import PackageNotFoundError, version
from packaging.requirements import Requirement

for line in sys.stdin:
    requirement = Requirement(line.strip())
    try:
        if requirement.specifier.contains(version(requirement.name), prereleases=True):
            continue
    except PackageNotFoundError:
        pass
    print(requirement.name)
')
    if [[ -n $need ]]; then
        echo "== installing from bench/gpu/wheels into $SITE:" $need
        # shellcheck disable=SC2086  # one argument per package
        "$PY" -m pip install --no-index --find-links bench/gpu/wheels --no-deps --target "$SITE" \
            --disable-pip-version-check --no-warn-conflicts --quiet $need || {
            echo "pip install failed: did bench/gpu/fetch_wheels.sh run, and were bench/gpu/wheels carried?" >&2
            exit 1
        }
    fi
    "$PY" -c 'import platform, diffusers, imageio_ffmpeg, PIL, torch, transformers, video_gen.engine
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}, available: "
      f"{torch.cuda.is_available()}), diffusers {diffusers.__version__}, transformers {transformers.__version__}, "
      f"ffmpeg {imageio_ffmpeg.get_ffmpeg_version()}")' || exit 1
}

gpu_info() {
    nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.max.sm --format=csv 2>/dev/null || true
}

FULL_PART1=seed,default,seed-capped,capped
FULL_PART2=plan:group,compile,plan:model,plan:none,channels-last,plan:sequential

# The `next` call: its selection budget (the cases it starts must be estimated to end by then) and its hard
# limit (no case runs past it; the device allows 10 minutes a command, and the JSON must come back)
NEXT_BUDGET_S=${VIDEO_GEN_BENCH_NEXT_BUDGET_S:-540}
RESULTS=${VIDEO_GEN_BENCH_RESULTS:-$REPO/bench/results}

case $MODE in
    next)
        shift
        if [[ ${1:-} == --list ]]; then
            shift
            "${PYTHON:-python3}" bench/gpu/next.py --list --results "$RESULTS" --out "$OUT" "$@"
            exit $?
        elif [[ ${1:-} == --cpu-tiny ]]; then
            shift
            PY=${PYTHON:-$REPO/.venv/bin/python}
            export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
            [[ $OUT_GIVEN ]] || OUT=${TMPDIR:-/tmp}/video-gen-next-cpu-tiny
            mkdir -p "$OUT"
            "$PY" bench/gpu/next.py --tiny --device cpu --results "$RESULTS" --out "$OUT" \
                --models-dir "${VIDEO_GEN_BENCH_MODELS:-$OUT/models}" "$@" || exit $?
            # The README's table from these tiny rows, into a copy: the real README holds GPU rows only
            cp README.md "$OUT/README.md"
            "$PY" bench/report.py --tiny --results "$OUT" --readme "$OUT/README.md" || exit $?
            echo "== done in $SECONDS s; JSON and README.md in $OUT"
            exit 0
        fi
        PY=${PYTHON:-python3}
        gpu_info
        install_wheels
        budget=$(( NEXT_BUDGET_S - SECONDS ))
        hard=$(( LIMIT_S - SECONDS ))
        echo "== next: $budget s for cases (hard limit $hard s)"
        timeout --signal=INT --kill-after=15 "$(( hard + 5 ))" "$PY" bench/gpu/next.py --device cuda \
            --results "$RESULTS" --out "$OUT" --models-dir "$MODELS" --budget-s "$budget" \
            --hard-limit-s "$hard" "$@"
        status=$?
        echo "== next ended with status $status in $SECONDS s; JSON in $OUT" \
            "(commit it to bench/results/, then run bench/report.py)"
        ls -l "$OUT"
        exit $status
        ;;
    part1 | part2 | tiny)
        PY=${PYTHON:-python3}
        gpu_info
        install_wheels
        if [[ $MODE != part2 ]]; then
            bench tiny-cuda 240 --tiny --device cuda --cases all
        fi
        if [[ $MODE == part1 ]]; then
            bench part1 "$LIMIT_S" --device cuda --model-dir "$MODELS" --cases "$FULL_PART1"
            # Feed-forward chunking of AnimateDiff's temporal blocks: off, the old way, ours
            script ff_chunking-animatediff-cuda 120 "$PY" bench/ff_chunking.py --device cuda --size 512 \
                --frames 16 --repeats 2
        elif [[ $MODE == part2 ]]; then
            bench part2 "$LIMIT_S" --device cuda --model-dir "$MODELS" --cases "$FULL_PART2"
        fi
        ;;
    wan)  # bench/gpu_wan.py: the tiny models on CUDA first (a crash shows in a minute), then full size
        PY=${PYTHON:-python3}
        gpu_info
        install_wheels
        for name in tiny full; do
            left=$(time_for "wan-$name" "$LIMIT_S") || break
            flags=()
            [[ $name == tiny ]] && flags=(--tiny)
            echo "== wan-$name (at most $left s)"
            timeout --signal=INT --kill-after=15 "$left" "$PY" bench/gpu_wan.py "${flags[@]}" --device cuda \
                --model-dir "$MODELS/wan-$name" --out "$OUT/gpu_wan-$name.json" \
                || echo "== wan-$name ended with status $? (its JSON keeps the rows it finished)"
        done
        ;;
    ltx)
        PY=${PYTHON:-python3}
        gpu_info
        install_wheels
        ltx_bench tiny-cuda 150 --tiny --device cuda
        ltx_bench 2b 330 --device cuda --model-dir "$MODELS" --models 2b-distilled
        ltx_bench 13b "$LIMIT_S" --device cuda --model-dir "$MODELS" --models 13b-distilled
        ;;
    install)  # the wheels alone, and the import check
        PY=${PYTHON:-python3}
        install_wheels
        ;;
    --cpu-tiny)
        PY=${PYTHON:-$REPO/.venv/bin/python}
        export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
        # aot_eager: torch.compile's capture of the UNet's forward without C++ code generation (minutes on 2 cores)
        bench cpu-tiny "$LIMIT_S" --tiny --device cpu --cases all --compile-backend aot_eager
        ;;
    *)
        sed -n '2,/^set /p' "$0" | sed '$d'
        exit 2
        ;;
esac
echo "== done in $SECONDS s; JSON in $OUT"
ls -l "$OUT"/gpu_svd-*.json 2>/dev/null

#!/usr/bin/env bash
# Download, here (with network), the wheels bench/gpu/run.sh installs on a GPU machine without network:
# the packages of requirements.txt (column 2) for CPython 3.12 on x86-64 Linux, no dependencies (the
# list is complete; torch, transformers and accelerate are already on that machine), into
# bench/gpu/wheels/ (git-ignored; named in the run's `carry`). Prints the total with the working tree, which
# must stay under the 64 MiB a device run can carry (measured 2026-12: 43.1 MiB of wheels, 1.4 MiB of tree).
#
#   bench/gpu/fetch_wheels.sh            # with this repository's .venv; PIP=... for another pip
set -euo pipefail
cd "$(dirname "$0")"
PIP=${PIP:-../../.venv/bin/pip}
LIMIT_MIB=64

mkdir -p wheels
rm -f wheels/*.whl
mapfile -t wheels < <(grep -v '^#' requirements.txt | awk 'NF {print $2}')
"$PIP" download --only-binary=:all: --no-deps --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --platform any --dest wheels "${wheels[@]}"

ls -l wheels
total=$(du -cb wheels/*.whl | tail -1 | cut -f1)
# What else travels with them: the tracked files and the untracked ones git does not ignore
tree=$(cd ../.. && git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null \
    | tail -1 | cut -f1)
mib() { awk -v bytes="$1" 'BEGIN {printf "%.1f", bytes / 1048576}'; }
echo "bench/gpu/wheels: $(ls wheels/*.whl | wc -l) wheels, $(mib "$total") MiB; with the working tree" \
    "($(mib "${tree:-0}") MiB) $(mib $(( total + ${tree:-0} ))) MiB travel (the limit is $LIMIT_MIB MiB)"
if (( total + ${tree:-0} >= LIMIT_MIB * 1048576 )); then
    echo "too big to carry to the GPU machine" >&2
    exit 1
fi

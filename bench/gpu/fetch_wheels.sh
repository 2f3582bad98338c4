#!/usr/bin/env bash
# Download, here (with network), the wheels bench/gpu/run.sh installs on a GPU machine without network:
# the packages of requirements.txt (column 2) for CPython 3.12 on x86-64 Linux, no dependencies (the
# list is complete; torch, transformers and accelerate are already on that machine), into
# bench/gpu/wheels/ (git-ignored; carried to the GPU machine with the working tree). Prints the total,
# which must stay under the 64 MiB a device run can carry.
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
echo "bench/gpu/wheels: $(ls wheels/*.whl | wc -l) wheels, $total bytes" \
    "($(awk -v bytes="$total" 'BEGIN {printf "%.1f", bytes / 1048576}') MiB; the limit is $LIMIT_MIB MiB)"
if (( total >= LIMIT_MIB * 1048576 )); then
    echo "too big to carry to the GPU machine" >&2
    exit 1
fi

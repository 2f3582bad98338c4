#!/usr/bin/env bash
# Start the video generator page and open it in the browser.
#   ./launch.sh                      first run: creates .venv and installs everything (a few minutes)
#   ./launch.sh --port 7861 --no-browser      any app.py flag (python app.py --help) is passed on
# Needs Python 3.10+ (set PYTHON=/path/to/python3 to choose one). Stop the page with Ctrl+C.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
VENV=.venv
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
        echo "launch.sh: needs Python 3.10 or newer as '$PYTHON' (set PYTHON=/path/to/python3)" >&2
        exit 1
    fi
    echo "Creating $VENV (first run only)..."
    "$PYTHON" -m venv "$VENV"
fi

# PyTorch first, and only when it is missing, so that a build you installed yourself (CUDA, ROCm) is kept.
# On Linux, PyPI's torch 2.13.0 is the CUDA build; on macOS it runs on Apple's GPU (MPS).
if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
    echo "Installing PyTorch 2.13.0 (first run only; a large download)..."
    "$PY" -m pip install --quiet "torch==2.13.0"
fi

# The project itself, again only when pyproject.toml changed since the last install.
STAMP="$VENV/.video-gen-installed"
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    echo "Installing video-gen..."
    "$PY" -m pip install --quiet -e .
    # the upscalers' loader, without its torchvision requirement (which pulls another torch build)
    "$PY" -m pip install --quiet --no-deps "spandrel==0.4.2"
    touch "$STAMP"
fi

exec "$PY" app.py --open-browser "$@"

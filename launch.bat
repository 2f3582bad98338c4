@echo off
rem Start the video generator page and open it in the browser (Windows).
rem   launch.bat                          first run: creates .venv and installs everything (a few minutes)
rem   launch.bat --port 7861 --no-browser any app.py flag (python app.py --help) is passed on
rem Needs Python 3.10+ from python.org (the "py" launcher). Stop the page with Ctrl+C.
setlocal
cd /d "%~dp0"

set "PY=.venv\Scripts\python.exe"
if exist "%PY%" goto have_venv
echo Creating .venv, first run only...
py -3 -c "import sys; sys.exit(sys.version_info < (3, 10))" >nul 2>&1
if errorlevel 1 (
    echo launch.bat: needs Python 3.10 or newer; install it from python.org with the "py" launcher.
    goto failed
)
py -3 -m venv .venv
if errorlevel 1 goto failed
:have_venv

rem PyTorch first, and only when it is missing, so that a build you installed yourself is kept.
rem PyPI's torch for Windows is CPU-only: take the CUDA 12.8 build from PyTorch's own index. It also runs
rem without an NVIDIA GPU (on the CPU, slowly). For the CPU-only build use .../whl/cpu instead.
"%PY%" -c "import torch" >nul 2>&1
if errorlevel 1 (
    echo Installing PyTorch 2.13.0 with CUDA, first run only; a large download...
    "%PY%" -m pip install --quiet torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128
    if errorlevel 1 goto failed
)

rem The project itself, again only when pyproject.toml changed since the last install.
"%PY%" -c "import os, sys; s = '.venv/.video-gen-installed'; sys.exit(0 if os.path.exists(s) and os.path.getmtime(s) >= os.path.getmtime('pyproject.toml') else 1)"
if errorlevel 1 (
    echo Installing video-gen...
    "%PY%" -m pip install --quiet -e .
    if errorlevel 1 goto failed
    rem spandrel, the upscalers' loader, without its dependencies: its torchvision requirement pulls another torch build
    "%PY%" -m pip install --quiet --no-deps "spandrel==0.4.2"
    if errorlevel 1 goto failed
    type nul > ".venv\.video-gen-installed"
)

"%PY%" app.py --open-browser %*
exit /b %errorlevel%

:failed
echo Setup failed: see the messages above.
pause
exit /b 1

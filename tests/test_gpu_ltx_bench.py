"""bench/gpu_ltx.py in its tiny CPU mode: each case is one row (a failure is its error, never the end of the
run), the JSON is complete, and two-stage runs with the upsampler it builds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_tiny_cpu_run_writes_a_row_per_case(tmp_path):
    out = tmp_path / "ltx.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_ltx.py"), "--tiny", "--device", "cpu",
                           "--models", "2b-distilled", "--cases", "capped,uncapped,two-stage",
                           "--model-dir", str(tmp_path / "models"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["complete"] is True and result["tiny"] is True
    rows = {row["case"]: row for row in result["rows"]}
    assert list(rows) == ["capped", "uncapped", "two-stage"]
    assert rows["capped"]["error"].startswith("RuntimeError: the cap needs a CUDA device")
    for case in ("uncapped", "two-stage"):
        assert rows[case]["error"] is None and rows[case]["seconds"] > 0 and rows[case]["estimate_bytes"] > 0


def test_unknown_cases_are_refused(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_ltx.py"), "--tiny", "--device", "cpu",
                           "--cases", "nonsense", "--out", str(tmp_path / "x.json")],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode != 0 and "unknown case 'nonsense'" in done.stderr
    assert not (tmp_path / "x.json").exists()

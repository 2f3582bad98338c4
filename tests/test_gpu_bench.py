"""bench/gpu_svd.py survives its cases: each case is one row, a failing case is a row with an
`error` and never ends the run, the JSON is on disk after every row, and --model-dir reuses the model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def bench(*args: str, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "bench" / "gpu_svd.py"), "--tiny", "--device", "cpu",
                             "--out", str(out), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)


def test_each_case_is_a_row_a_failure_is_its_error_and_the_json_is_written_after_every_row(tmp_path):
    out, models = tmp_path / "bench.json", tmp_path / "models"
    # "capped" fails on the CPU (the cap is CUDA's); the case after it must still run
    cases = ["capped", "default", "plan:none"]
    process = bench("--cases", ",".join(cases), "--model-dir", str(models), out=out)
    seen = 0
    for line in process.stdout:
        if not line.startswith('{"case"'):
            continue
        row = json.loads(line)
        assert row["case"] == cases[seen]
        on_disk = [written["case"] for written in json.loads(out.read_text())["rows"]]
        assert on_disk[:seen + 1] == cases[:seen + 1]  # written before the row was printed
        seen += 1
    assert process.wait(timeout=300) == 0, process.stderr.read()[-3000:]
    result = json.loads(out.read_text())
    assert result["complete"] is True and result["build_model_s"] > 0
    rows = {row["case"]: row for row in result["rows"]}
    assert list(rows) == cases
    assert rows["capped"]["error"].startswith("RuntimeError: the cap needs a CUDA device")
    for case in ("default", "plan:none"):
        row = rows[case]
        assert row["error"] is None and row["seconds"] > 0 and row["seconds_per_step"] > 0 and row["steps"] == 3
        assert set(row["stages"]) >= {"encoding_image", "denoising", "decoding"}
        assert row["stages"]["decoding"]["estimate_bytes"] == row["estimate_bytes"] > 0
    assert result["summary"]["failed"] == {"capped": rows["capped"]["error"]}

    # A second call finds the model built (and, out of time budget, starts no case but still writes its row)
    again = tmp_path / "again.json"
    process = bench("--cases", "seed", "--model-dir", str(models), "--budget-s", "0", out=again)
    assert process.wait(timeout=300) == 0, process.stderr.read()[-3000:]
    result = json.loads(again.read_text())
    assert result["build_model_s"] == 0
    assert [row["case"] for row in result["rows"]] == ["seed"]
    assert result["rows"][0]["error"].startswith("not started")


def test_unknown_cases_are_refused_before_anything_runs(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_svd.py"), "--tiny", "--device", "cpu",
                           "--cases", "default,nonsense", "--out", str(tmp_path / "x.json")],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode != 0 and "unknown case 'nonsense'" in done.stderr
    assert not (tmp_path / "x.json").exists()

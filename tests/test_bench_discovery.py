"""bench/discovery.py (the model catalog) runs small on the CPU, and a resident job scans no folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_discovery_benchmark_after_only_scans_nothing_per_job(tmp_path):
    out = tmp_path / "discovery.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "discovery.py"), "--files", "200", "--repeats", "2",
                           "--no-before", "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "after (catalog)" in done.stdout and "target < 100 ms after" in done.stdout
    result = json.loads(out.read_text())
    assert result["files"] == 200 and sum(result["tree_suffixes"].values()) == 200
    assert result["before"] is None and result["ratio_before_after"] is None
    [process] = result["processes"]
    assert Path(process["video_gen_file"]).resolve().is_relative_to(REPO)  # this tree, not another
    assert process["warm_up_scans"] == 1  # the catalog's one scan, on the first job
    after, rescan = result["after"], result["after_rescan"]
    for run in (after, rescan):
        assert {"median_ms", "runs_ms", "median_to_first_unet_ms", "scans_per_job", "discover_ms_per_job"} <= set(run)
        assert len(run["runs_ms"]) == 2 and run["median_ms"] > 0
    assert after["scans_per_job"] == [0, 0] and after["discover_ms_per_job"] == 0
    assert all(scans >= 1 for scans in rescan["scans_per_job"])  # the sanity case does scan: the counter works

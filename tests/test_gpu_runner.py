"""bench/gpu/run.sh next, the GPU runner that fits a lent session's device budget: every bench script parses
(`bash -n`), the case list is in the issue's order, the selection picks up where the results files stopped and
stays inside its budget, bench/report.py writes the README's table between its markers only, and the whole
call runs at tiny size on the CPU (`run.sh next --cpu-tiny`), resuming after a results file's cases."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench" / "gpu"))
sys.path.insert(0, str(REPO / "bench"))

import cases  # noqa: E402  (bench/gpu/cases.py: no torch)
import report  # noqa: E402  (bench/report.py: no torch)

H100 = "nvidia-h100-80gb-hbm3"
IDS = [case.id for case in cases.CASES]


def results_file(folder: Path, rows: list[dict], *, card: str = "NVIDIA H100 80GB HBM3", tiny: bool = False,
                 started: str = "2026-01-02T03:04:05") -> Path:
    """A results file as bench/gpu/next.py writes it, holding `rows`."""
    slug = re.sub(r"[^a-z0-9]+", "-", card.lower()).strip("-")
    data = {"runner": "bench/gpu/next.py", "format": 1, "card": card, "card_slug": slug, "tiny": tiny,
            "started": started, "rows": rows}
    stamp = started.replace("-", "").replace(":", "").replace("T", "-")
    path = folder / f"{slug}{'-tiny' if tiny else ''}-{stamp}.json"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def row(case: str, error: str | None = None, **numbers) -> dict:
    return {"case": case, "error": error, "seconds": 10.0, "s_per_step": 0.4, "peak_reserved_gib": 9.5,
            "plan": "seeded", **numbers}


def planned(done=(), budget=cases.CALL_BUDGET_S, **options) -> list[str]:
    return [case.id for case in cases.plan(cases.CASES, set(done), budget, **options)]


# ---- the scripts -----------------------------------------------------------------------------------------------
def test_every_script_under_bench_passes_bash_n():
    scripts = sorted((REPO / "bench").rglob("*.sh"))
    assert REPO / "bench" / "gpu" / "run.sh" in scripts
    for script in scripts:
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, f"{script.relative_to(REPO)}: {done.stderr}"


def test_the_benchmarks_take_the_tiny_builders_from_one_place():
    """video_gen/testing*.py becomes video_gen/tiny/ (issue 23): bench/tiny_models.py's table is the one edit."""
    import tiny_models

    for name in tiny_models.HOMES:
        assert callable(getattr(tiny_models, name)) or name.isupper()
    direct = [path.relative_to(REPO) for path in (REPO / "bench").rglob("*.py")
              if path.name != "tiny_models.py" and "video_gen.testing" in path.read_text()]
    assert direct == []


# ---- the case list ---------------------------------------------------------------------------------------------
def test_the_cases_are_in_the_issues_order_with_stable_ids_and_known_models():
    assert len(IDS) == len(set(IDS))
    assert all(re.fullmatch(r"[a-z0-9.\-]+/[a-z0-9:.\-]+", name) for name in IDS), IDS
    tiers = [case.tier for case in cases.CASES]
    assert tiers == sorted(tiers) and tiers[0] == 1
    assert IDS[:3] == ["svd-xt/default", "svd-xt/seed-capped", "svd-xt/capped"]  # the headline, then the 12 GiB pair
    assert {case.model for case in cases.CASES if case.tier == 2} == {"wan2.1-i2v-14b", "wan2.2-ti2v-5b"}
    assert {case.model for case in cases.CASES if case.tier == 3} == {"ltx-2b-distilled"}
    assert {case.params.get("speed") for case in cases.CASES if case.tier == 4} == {
        None, "first-block-cache", "magcache", "taylorseer"}
    assert {"svd-xt/plan:group", "svd-xt/compile"} <= {case.id for case in cases.CASES if case.tier == 5}
    for case in cases.CASES:
        assert case.kind in ("svd", "job", "upscale") and case.cost_s > 0
        assert all(model in cases.MODELS for model in case.models)
        assert all(name in cases.BY_ID for name in case.after)
        assert case.compare_to is None or case.compare_to in cases.BY_ID
    import build  # bench/gpu/build.py: one builder per model

    assert set(build.BUILDERS) == set(cases.MODELS)
    assert cases.too_big(cases.CASES, cases.CALL_BUDGET_S) == []  # every case fits a fresh call


# ---- the selection ---------------------------------------------------------------------------------------------
def test_a_fresh_card_gets_the_first_cases_in_order_and_the_plan_fits_the_budget():
    chosen = cases.plan(cases.CASES, set(), cases.CALL_BUDGET_S)
    assert [case.id for case in chosen][:4] == IDS[:4]
    builds = []
    for case in chosen:
        builds += cases.models_to_build(case, set(builds))
    assert builds.count("svd-xt") == 1  # a model is built once per call, by the first case that needs it
    cost = sum(case.cost_s for case in chosen) + sum(cases.MODELS[key].build_s for key in builds)
    assert cost <= cases.CALL_BUDGET_S
    assert planned(budget=50) == []  # SVD-XT's build and its first case do not fit 50 s: nothing starts


def test_with_the_first_cases_measured_next_picks_the_following_ones(tmp_path):
    results_file(tmp_path, [row(name) for name in IDS[:3]])
    results_file(tmp_path, [row("svd-xt/default")], card="NVIDIA H200", started="2026-01-03T00:00:00")
    import next as runner

    results = runner.load_results([tmp_path])
    done, failed = cases.measured(results, H100, tiny=False)
    assert done == set(IDS[:3]) and failed == set()
    assert planned(done)[0] == "wan2.1-i2v-14b/lightx2v"
    # another card, or the tiny dry run, has its own measurements
    assert planned(cases.measured(results, "nvidia-h200", tiny=False)[0])[0] == "svd-xt/seed-capped"
    assert planned(cases.measured(results, H100, tiny=True)[0])[0] == "svd-xt/default"


def test_failed_cases_are_tried_again_after_the_untried_ones_and_out_of_memory_is_an_answer(tmp_path):
    results_file(tmp_path, [row("svd-xt/default", "RuntimeError: CUDA error: an illegal memory access"),
                            row("svd-xt/seed-capped", "OutOfMemoryError: CUDA out of memory. Tried to allocate"),
                            row("svd-xt/capped", "did not finish: the call ended during this case"),
                            row("ltx-2b-distilled/capped", "GenerationFailed: out of cuda memory while decoding, "
                                "on the cheapest plan", out_of_memory=True)])
    import next as runner

    done, failed = cases.measured(runner.load_results([tmp_path]), H100, tiny=False)
    assert done == {"svd-xt/seed-capped", "ltx-2b-distilled/capped"}
    assert failed == {"svd-xt/default", "svd-xt/capped"}
    order = planned(done, budget=10_000, failed=failed)
    assert "svd-xt/seed-capped" not in order and "ltx-2b-distilled/capped" not in order
    assert order[-2:] == ["svd-xt/default", "svd-xt/capped"]  # retried last, in priority order

    class OutOfMemoryError(RuntimeError):  # torch's, as the engine's GenerationFailed carries it
        pass

    try:
        try:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        except OutOfMemoryError as error:
            raise ValueError("the job failed") from error
    except ValueError as error:
        assert runner.out_of_memory(error)
    assert not runner.out_of_memory(RuntimeError("CUDA error: an illegal memory access"))


def test_a_case_that_does_not_fit_what_is_left_is_passed_over_for_cheaper_ones():
    tier1 = set(IDS[:3])
    # 210 s: Wan 14B (build 210 + 75) and TI2V-5B (110 + 150) do not fit; LTX 2B (100 + 45, then 60) does
    assert cases.MODELS["ltx-2b-distilled"].build_s + 45 + 60 <= 210 < cases.MODELS["wan2.2-ti2v-5b"].build_s + 150
    assert planned(tier1, budget=210) == ["ltx-2b-distilled/uncapped", "ltx-2b-distilled/capped"]
    # a model already on the machine's disk costs no build
    assert planned(tier1, budget=80, built={"wan2.1-i2v-14b"}) == ["wan2.1-i2v-14b/lightx2v"]
    # a case already run in this call is not run again
    assert "wan2.1-i2v-14b/lightx2v" not in planned(tier1, tried={"wan2.1-i2v-14b/lightx2v"})


def test_a_cache_hook_brings_its_baseline_into_the_same_call_and_unavailable_cases_are_skipped():
    everything_but = set(IDS) - {"wan2.2-ti2v-5b/first-block-cache"}
    assert planned(everything_but) == ["wan2.2-ti2v-5b/no-cache", "wan2.2-ti2v-5b/first-block-cache"]
    assert planned(everything_but, ran={"wan2.2-ti2v-5b/no-cache"}) == ["wan2.2-ti2v-5b/first-block-cache"]
    hooks = set(IDS) - {"wan2.2-ti2v-5b/first-block-cache", "wan2.2-ti2v-5b/magcache"}
    assert planned(hooks, unavailable={"wan2.2-ti2v-5b/magcache": "not in the app"}) == [
        "wan2.2-ti2v-5b/no-cache", "wan2.2-ti2v-5b/first-block-cache"]


def test_next_list_prints_the_plan_without_a_gpu(tmp_path):
    results_file(tmp_path, [row(name) for name in IDS[:3]])
    done = subprocess.run([sys.executable, str(REPO / "bench" / "gpu" / "next.py"), "--list", "--results",
                           str(tmp_path), "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("NVIDIA H100 80GB HBM3: 3 of ")
    assert lines[1].split()[0] == "wan2.1-i2v-14b/lightx2v" and "(builds wan2.1-i2v-14b)" in lines[1]
    assert "wan2.2-ti2v-5b/magcache: not run: the app does not take it yet" in done.stdout


# ---- the README's table ----------------------------------------------------------------------------------------
README = """# x

## Speed and memory

Measured on the CPU: 18,292 bytes per latent pixel (kept as written).

{begin}
stale text
{end}

## Environment
"""


def test_the_report_writes_measured_rows_with_card_and_date_between_the_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README.format(begin=report.BEGIN, end=report.END))
    results = tmp_path / "results"
    results_file(results, [row("svd-xt/default", seconds=6.0), row("svd-xt/seed", seconds=9.0),
                           row("svd-xt/capped", "OutOfMemoryError: CUDA out of memory")])
    results_file(results, [row("svd-xt/default", seconds=5.0)], started="2026-02-01T00:00:00")  # newer: wins
    results_file(results, [row("ltx-2b-distilled/uncapped")], tiny=True, card="cpu")  # the dry run's: not here
    assert report.main(["--results", str(results), "--readme", str(readme), "--check"]) == 1
    assert report.main(["--results", str(results), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "stale text" not in text and "18,292 bytes per latent pixel (kept as written)" in text
    assert text.startswith("# x\n") and text.endswith("\n## Environment\n")
    lines = {line.split("|")[1].strip(" `"): line for line in text.splitlines() if line.startswith("| `")}
    assert list(lines) == IDS  # every case, in order, once per card
    assert "NVIDIA H100 80GB HBM3, 2026-02-01" in lines["svd-xt/default"]
    assert "| 5.0 |" in lines["svd-xt/default"] and "1.80× `svd-xt/seed`" in lines["svd-xt/default"]
    assert "out of memory: OutOfMemoryError" in lines["svd-xt/capped"]
    assert lines["ltx-2b-distilled/uncapped"].endswith(f"| {report.NOT_MEASURED} |")
    assert report.main(["--results", str(results), "--readme", str(readme), "--check"]) == 0


def test_the_readmes_gpu_table_is_what_the_committed_results_say():
    assert report.main(["--check"]) == 0, "run: python bench/report.py"


# ---- the whole call, tiny, on the CPU ----------------------------------------------------------------------------
def test_next_cpu_tiny_resumes_after_a_results_files_cases_and_regenerates_a_readme_copy(tmp_path):
    """A results file holds the first two cases: the call runs the following ones in order, inside its budget,
    writes its JSON, and the table in a copy of the README shows both files' rows."""
    out = tmp_path / "out"
    seeded = results_file(out, [row(name) for name in IDS[:2]], card="cpu", tiny=True)
    readme_before = (REPO / "README.md").read_bytes()
    env = {**os.environ, "OUT": str(out), "VIDEO_GEN_BENCH_RESULTS": str(out), "PYTHON": sys.executable,
           "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu" / "run.sh"), "next", "--cpu-tiny", "--budget-s", "30"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (REPO / "README.md").read_bytes() == readme_before  # the real README is never touched

    written = [path for path in out.glob("cpu-tiny-*.json") if path != seeded]
    assert len(written) == 1
    result = json.loads(written[0].read_text())
    assert result["tiny"] is True and result["card"] == "cpu" and result["finished"]
    assert result["measured_before"] == sorted(IDS[:2])
    ran = [entry["case"] for entry in result["rows"]]
    assert ran[:2] == ["svd-xt/capped", "wan2.1-i2v-14b/lightx2v"]  # the ones after the measured two
    assert ran == sorted(set(ran), key=IDS.index) and not set(ran) & set(IDS[:2])  # in order, once each
    assert result["wall_s"] <= 30 + 30  # the budget bounds the starts; no case outlives its alarm
    rows = {entry["case"]: entry for entry in result["rows"]}
    capped = rows["svd-xt/capped"]
    assert capped["error"] is None and capped["seconds"] > 0 and capped["capped"] and not capped["cap_enforced"]
    wan = rows["wan2.1-i2v-14b/lightx2v"]
    assert wan["error"] is None and wan["s_per_step"] > 0
    assert wan["loras"] == ["Wan21_I2V_14B_lightx2v_cfg_step_distill_lora_rank64"]
    assert (wan["steps"], wan["guidance"]) == (4, 1.0)  # the distill LoRA's defaults, read from its name
    assert "the app does not take it yet" in result["not_run"]["wan2.2-ti2v-5b/magcache"]
    assert set(result["builds"]) >= {"svd-xt", "wan2.1-i2v-14b"}

    table = (out / "README.md").read_text()
    lines = {line.split("|")[1].strip(" `"): line for line in table.splitlines() if line.startswith("| `")}
    today = date.today().isoformat()
    assert "cpu, 2026-01-02 (tiny, CPU)" in lines["svd-xt/default"]  # the earlier file's row
    assert f"cpu, {today} (tiny, CPU)" in lines["svd-xt/capped"]  # this call's
    # what the 30 s did not reach (how far it gets depends on the machine's load) says it was never measured
    for case in [case for case in IDS if case not in ran and case not in IDS[:2]]:
        assert lines[case].endswith(f"| {report.NOT_MEASURED} |"), case

"""Regenerate the README's GPU table ("Speed and memory") from every results file of bench/gpu/run.sh next.

    .venv/bin/python bench/report.py            # after committing a lent session's JSON to bench/results/
    .venv/bin/python bench/report.py --check    # exit 1 if the README's table is not what the results say
    .venv/bin/python bench/report.py --tiny --results DIR --readme COPY.md   # the CPU dry run's rows (run.sh)

One line per case of bench/gpu/cases.py and card: the newest row of that case measured on that card, marked
with the card and the date; a case never measured says "not yet measured on a GPU". Only the text between
the two markers below is replaced, so the rest of the README (the CPU measurements included) stays as written.
Reads no torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "gpu"))

import cases  # noqa: E402
from next import load_results  # noqa: E402

BEGIN = "<!-- bench/report.py: GPU table begin (generated from bench/results/*.json; do not edit by hand) -->"
END = "<!-- bench/report.py: GPU table end -->"
NOT_MEASURED = "not yet measured on a GPU"


def newest_rows(results: list[dict]) -> dict[tuple[str, str], tuple[dict, dict]]:
    """(case, card) -> (row, its results file): the newest row of each case on each card. A row that did not
    answer its case (a crash, a timeout) yields to an older one that did."""
    chosen: dict[tuple[str, str], tuple[dict, dict]] = {}
    for result in sorted(results, key=lambda result: result.get("started") or ""):
        for row in result.get("rows", []):
            key = (row.get("case"), result.get("card"))
            if key in chosen and cases.is_result(chosen[key][0]) and not cases.is_result(row):
                continue
            chosen[key] = (row, result)
    return chosen


def _number(value, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "–"


def _speed_against(case: cases.Case, row: dict, card: str, chosen) -> str:
    """'1.52× svd-xt/seed-capped': how much faster than the case it compares to, on the same card."""
    if row.get("speedup"):  # measured against its baseline in the same call
        return f"{row['speedup']:.2f}× `{case.compare_to}` (same call)"
    if not case.compare_to or (case.compare_to, card) not in chosen:
        return ""
    other = chosen[case.compare_to, card][0]
    mine, theirs = row.get(case.compare_field), other.get(case.compare_field)
    if not mine or not theirs or row.get("error") or other.get("error"):
        return ""
    return f"{theirs / mine:.2f}× `{case.compare_to}`"


def _date(result: dict) -> str:
    return (result.get("started") or "")[:10]


def table(results: list[dict]) -> str:
    chosen = newest_rows(results)
    cards = sorted({card for _, card in chosen})
    lines = [
        "| case | what | s/step | job s | s per video s | peak GiB | plan | speed | measured |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases.CASES:
        measured = [(card, *chosen[case.id, card]) for card in cards if (case.id, card) in chosen]
        if not measured:
            lines.append(f"| `{case.id}` | {case.title} | – | – | – | – | – | – | {NOT_MEASURED} |")
            continue
        for card, row, result in measured:
            where = f"{card}, {_date(result)}{' (tiny, CPU)' if result.get('tiny') else ''}"
            if row.get("error"):
                what = "out of memory" if cases.is_result(row) else "failed"
                lines.append(f"| `{case.id}` | {case.title} | – | – | – | – | {what}: {_cell(row['error'])} | – | "
                             f"{where} |")
                continue
            peak = _number(row.get("peak_reserved_gib"))
            if row.get("capped") and not row.get("cap_enforced"):
                peak += " (cap not enforced)"
            elif row.get("within_cap") is False:
                over = cases.WITHIN_CAP_GIB + (row.get("cap_gib") or cases.CAP_GIB) - cases.CAP_GIB
                peak += f" (over {over:g})"
            job_s = row.get("seconds_loaded") or row.get("seconds")
            lines.append(f"| `{case.id}` | {case.title} | {_number(row.get('s_per_step'), 3)} | {_number(job_s, 1)} | "
                         f"{_number(row.get('s_per_video_s'), 1)} | {peak} | {_cell(row.get('plan') or '')} | "
                         f"{_speed_against(case, row, card, chosen)} | "
                         f"{where} |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")[:160]


def section(results: list[dict]) -> str:
    """The generated text between the markers: a line on where the numbers come from, then the table."""
    files = sorted(result["_file"] for result in results)
    source = (f"From {len(files)} results file{'s' if len(files) != 1 else ''} "
              f"({', '.join(f'`{name}`' for name in files)})" if files else
              "No GPU has measured these cases yet")
    return (f"{BEGIN}\n{source}. *s/step*: median seconds per denoising step (upscale cases: per frame); *job s*: "
            f"the job with its model loaded (the load is timed apart; SVD's cases after a 2-step warm-up); *s per "
            f"video s*: job s per second of the video it made; *peak GiB*: "
            f"`max_memory_reserved`; *speed*: how many times faster than the case named, on the same card.\n\n"
            f"{table(results)}\n{END}")


def regenerate(readme_text: str, results: list[dict]) -> str:
    if BEGIN not in readme_text or END not in readme_text:
        raise SystemExit(f"the README has no generated table: put the two lines\n{BEGIN}\n{END}\n"
                         "where it goes (in the 'Speed and memory' section)")
    head, rest = readme_text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + section(results) + tail


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, action="append",
                        help="a folder of results files (repeatable; default bench/results/)")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("--tiny", action="store_true", help="the tiny CPU rows instead of the GPU ones")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if the table is stale")
    args = parser.parse_args(argv)
    folders = args.results or [REPO / "bench" / "results"]
    results = [result for result in load_results(folders) if bool(result.get("tiny")) == args.tiny]
    text = args.readme.read_text()
    updated = regenerate(text, results)
    if args.check:
        if updated != text:
            print(f"{args.readme}: the GPU table is stale; run python bench/report.py", file=sys.stderr)
            return 1
        print(f"{args.readme}: the GPU table matches {len(results)} results files")
        return 0
    if updated != text:
        args.readme.write_text(updated)
    print(f"{args.readme}: the GPU table from {len(results)} results files "
          f"({sum(len(result.get('rows', [])) for result in results)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`bench/gpu/run.sh next`: one call of at most 9 minutes that measures the most valuable cases not yet measured
on this card, and writes the JSON after every row.

    bench/gpu/run.sh next                  # on the GPU machine (wheels carried): see run.sh
    bench/gpu/run.sh next --list           # anywhere, no torch: what a call on an H100 would run now
    bench/gpu/run.sh next --cpu-tiny       # here: the same selection and resume at tiny size on the CPU
    .venv/bin/python bench/gpu/next.py --tiny --device cpu --out /tmp/x --budget-s 60

What is already measured is read from every results file in --results (default bench/results/) and --out: a
case counts as measured on a card when a row of that card answers it (a measurement, or out of memory); a case
that crashed or ran out of time is tried again after the cases never tried. Cases run in bench/gpu/cases.py's
order, each only if its estimated cost (and its models' builds) fits what is left of --budget-s; a case
that does not fit is passed over for cheaper ones after it. Each case runs in its own `try` under an alarm
(about twice its estimate, never past --hard-limit-s), so a crash or a hang costs one row, not the call.

The JSON (`<card>-<date>-<time>.json`, `-tiny` before the date for a tiny run) goes to --out and is rewritten
before each case (with that case's row saying it did not finish, which stays if the call is killed) and after
it. `--only ID,ID` runs those cases, measured or not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import cases  # noqa: E402

RUNNER = "bench/gpu/next.py"
FORMAT = 1
DEFAULT_CARD = "NVIDIA H100 80GB HBM3"  # what torch calls the lent H100 (for --list, which has no GPU)
TINY_BUDGET_S = 240
CLEAN_UP_S = 15  # what a case's end (its row, the JSON, freeing memory) needs before the hard limit
NOT_FINISHED = "did not finish: the call ended during this case (killed at its limit, or the process died)"


def slug(card: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3': the card's part of a file name, and its key in resume."""
    return re.sub(r"[^a-z0-9]+", "-", card.lower()).strip("-") or "unknown"


def load_results(folders: list[Path], log=print) -> list[dict]:
    """Every results file of this runner in `folders` (each file once); other JSON files are skipped."""
    results, seen = [], set()
    for folder in folders:
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as error:
                log(f"== skipping {path}: {error}")
                continue
            if isinstance(data, dict) and data.get("runner") == RUNNER:
                data["_file"] = path.name
                results.append(data)
    return results


def write_atomically(path: Path, data: dict) -> None:
    """Replace `path` in one step: a reader (or a killed run) sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(partial, path)


class CaseTimeout(BaseException):
    """Raised by the alarm inside a case that ran past its time. A BaseException, so that no `except Exception`
    in the app or diffusers swallows it."""


@contextmanager
def alarm(seconds: float):
    def ring(signum, frame):
        raise CaseTimeout()

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1.0))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def out_of_memory(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from, is the device running out of memory."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower():
            return True
        error = error.__cause__ or error.__context__
    return False


def case_timeout(cost_s: float, hard_left_s: float) -> float:
    """About twice the estimate (at least 90 s more on a GPU's minute-long cases), never past the hard limit."""
    return min(max(2 * cost_s, cost_s + 90), hard_left_s - CLEAN_UP_S)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models on any device (the CPU dry run)")
    parser.add_argument("--device", help="cuda (default where there is one) or cpu")
    parser.add_argument("--results", type=Path, action="append",
                        help="a folder of earlier results files (repeatable; default bench/results/)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results",
                        help="the folder this call's JSON goes to (its files are read too)")
    parser.add_argument("--budget-s", type=float, help=f"start no case that would end after this many seconds "
                        f"(default {cases.CALL_BUDGET_S}, tiny {TINY_BUDGET_S})")
    parser.add_argument("--hard-limit-s", type=float,
                        help="no case runs past this many seconds (default: the budget plus 30)")
    parser.add_argument("--models-dir", type=Path, help="where models are built and kept for the next call "
                        "(default: a folder under the system's temporary folder)")
    parser.add_argument("--only", help="comma list of case ids to run, in this order, measured or not")
    parser.add_argument("--list", action="store_true", help="print what would run, and why the rest would not")
    parser.add_argument("--card", help=f"the card to plan for with --list (default: {DEFAULT_CARD}; cpu with --tiny)")
    args = parser.parse_args(argv)
    args.results = args.results or [REPO / "bench" / "results"]
    if args.budget_s is None:  # run.sh passes what its call has left; --list assumes a fresh call's set-up
        args.budget_s = TINY_BUDGET_S if args.tiny else cases.CALL_BUDGET_S - (cases.SETUP_S if args.list else 0)
    if args.hard_limit_s is None:
        args.hard_limit_s = args.budget_s + 30
    if args.only:
        names = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in names if name not in cases.BY_ID]
        if unknown:
            parser.error(f"--only: unknown case {unknown[0]!r}; known: {', '.join(cases.BY_ID)}")
        args.only = [cases.BY_ID[name] for name in names]
    return args


def _unavailable_here(device: str) -> dict[str, str]:
    """The cases this checkout's app cannot run on `device` (none known where the app cannot be imported)."""
    try:
        import measure
    except ImportError as error:
        print(f"(not checking which cases the app can run: {error})")
        return {}
    return {case.id: why for case in cases.CASES if (why := measure.unavailable(case, device))}


def print_plan(args) -> int:
    """--list: the selection for a fresh call on `--card`, from the results files alone (no torch)."""
    card = args.card or ("cpu" if args.tiny else DEFAULT_CARD)
    results = load_results([*args.results, args.out])
    done, failed = cases.measured(results, slug(card), args.tiny)
    unavailable = _unavailable_here("cpu" if args.tiny else "cuda")
    chosen = args.only or cases.plan(cases.CASES, done, args.budget_s, failed=failed, unavailable=unavailable,
                                     tiny=args.tiny)
    print(f"{card}{' (tiny)' if args.tiny else ''}: {len(done)} of {len(cases.CASES)} cases measured; "
          f"a call with {args.budget_s:.0f} s for its cases would run:")
    have: set[str] = set()
    for case in chosen:
        builds = cases.models_to_build(case, have)
        have |= set(builds)
        cost = cases.case_cost(case, args.tiny) + sum(cases.build_cost(key, args.tiny) for key in builds)
        built = f"  (builds {', '.join(builds)})" if builds else ""
        print(f"  {case.id:38} tier {case.tier}  ~{cost:4.0f} s{built}")
    rest = [case for case in cases.CASES if case.id not in done and case not in chosen and case.id not in unavailable]
    if rest:
        print("  later: " + ", ".join(case.id for case in rest))
    for name, why in unavailable.items():
        print(f"  {name}: not run: {why}")
    for case in cases.too_big(cases.CASES, args.budget_s, args.tiny):
        print(f"  {case.id}: too big for one call (its cost and its models' builds exceed {args.budget_s:.0f} s)")
    return 0


def main(argv=None) -> int:
    began = time.monotonic()
    args = parse_args(argv)
    if args.list:
        return print_plan(args)

    import torch

    import build
    import measure

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    card = torch.cuda.get_device_name(torch.device(device)) if cuda else "cpu"
    card_slug = slug(card)
    models_dir = args.models_dir or Path(os.environ.get("TMPDIR", "/tmp")) / (
        "video-gen-next-models-tiny" if args.tiny else "video-gen-next-models")
    results = load_results([*args.results, args.out])
    done, failed = cases.measured(results, card_slug, args.tiny)
    now = datetime.now()
    out = args.out / f"{card_slug}{'-tiny' if args.tiny else ''}-{now:%Y%m%d-%H%M%S}.json"
    unavailable = {case.id: reason for case in cases.CASES if (reason := measure.unavailable(case, device))}

    import diffusers
    import transformers

    report = {
        "runner": RUNNER, "format": FORMAT, "card": card, "card_slug": card_slug, "tiny": args.tiny,
        "device": device, "started": now.isoformat(timespec="seconds"), "finished": None,
        "budget_s": args.budget_s, "hard_limit_s": args.hard_limit_s, "cap_gib": cases.CAP_GIB,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "cuda": torch.version.cuda, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__},
        "measured_before": sorted(done), "failed_before": sorted(failed), "builds": {}, "rows": [],
        "not_run": {},
    }
    print(f"== {card}: {len(done)} of {len(cases.CASES)} cases measured before; writing {out}", flush=True)
    write_atomically(out, report)

    session = measure.Session(device, args.tiny, models_dir)
    session.warm_up_device()
    tried: set[str] = set()
    skip = dict(unavailable)
    broken: dict[str, str] = {}  # model -> why its build failed (its cases are not tried again in this call)
    queue = list(args.only) if args.only else None

    def elapsed() -> float:
        return time.monotonic() - began

    try:
        while True:
            built = {key for key in cases.MODELS if build.is_built(models_dir, key, args.tiny)}
            skip = {**unavailable, **{case.id: f"its model {model} failed to build: {why}"
                                      for case in cases.CASES for model, why in broken.items()
                                      if model in case.models}}
            if queue is not None:
                todo = cases.plan(queue, set(), args.budget_s - elapsed(), tried=tried, built=built,
                                  ran=set(session.rows), unavailable=skip, tiny=args.tiny)
            else:
                todo = cases.plan(cases.CASES, done, args.budget_s - elapsed(), failed=failed, tried=tried,
                                  built=built, ran=set(session.rows), unavailable=skip, tiny=args.tiny)
            if not todo:
                break
            case = todo[0]
            tried.add(case.id)
            row = {"case": case.id, "model": case.model, "tier": case.tier, "title": case.title,
                   "error": NOT_FINISHED, "when": datetime.now().isoformat(timespec="seconds"),
                   "estimate_s": cases.case_cost(case, args.tiny)}
            report["rows"].append(row)
            write_atomically(out, report)
            needs = cases.models_to_build(case, built)
            cost = cases.case_cost(case, args.tiny) + sum(cases.build_cost(key, args.tiny) for key in needs)
            limit = case_timeout(cost, args.hard_limit_s - elapsed())
            print(f"== {case.id} (estimate {cost:.0f} s{', builds ' + ', '.join(needs) if needs else ''}; "
                  f"stopped after {limit:.0f} s)", flush=True)
            started = time.monotonic()
            building = None
            try:
                with alarm(limit):
                    keep = {model for later in todo for model in later.models}
                    for building in needs:
                        session.release()
                        build.make_room(models_dir, building, args.tiny, keep)
                        seconds = build.build(models_dir, building, args.tiny, device)
                        report["builds"][building] = round(seconds, 1)
                        print(f"== built {building} in {seconds:.0f} s", flush=True)
                    building = None
                    measured_row = session.run(case)
                row.update(measured_row, error=None)
            except CaseTimeout:
                row["error"] = (f"timed out after {time.monotonic() - started:.0f} s (estimate {cost:.0f} s)"
                                + (f" while building {building}" if building else ""))
                session.release()
            except Exception as error:  # one case's failure (out of memory included) is its row, not the call's end
                traceback.print_exc()
                row["error"] = f"{type(error).__name__}: {measure._first_line(error)}"
                # The engine ends a job that ran out of memory on its cheapest plan with GenerationFailed
                row["out_of_memory"] = out_of_memory(error)
                if building:
                    row["error"] = f"building {building}: {row['error']}"
                    broken[building] = row["error"]
                session.release()
            finally:
                session.uncap()
            row["case_wall_s"] = round(time.monotonic() - started, 1)
            session.rows[case.id] = row
            write_atomically(out, report)
            print(json.dumps({key: row.get(key) for key in ("case", "error", "seconds", "s_per_step",
                                                            "peak_reserved_gib", "plan", "case_wall_s")}), flush=True)
    finally:
        session.close()
        chosen_ids = {row["case"] for row in report["rows"]}
        left = [case for case in (queue or cases.CASES) if case.id not in chosen_ids and case.id not in done]
        report["not_run"] = {case.id: skip.get(case.id) or "no time left in this call" for case in left}
        report["finished"] = datetime.now().isoformat(timespec="seconds")
        report["wall_s"] = round(elapsed(), 1)
        write_atomically(out, report)
    ok = [row for row in report["rows"] if not row.get("error")]
    print(f"== {len(ok)} of {len(report['rows'])} cases measured in {elapsed():.0f} s; "
          f"{len(report['not_run'])} left for a later call; JSON: {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

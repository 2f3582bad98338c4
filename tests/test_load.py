"""Load: 20 jobs from 4 clients at once, against `python app.py` in its own process.

They all finish, one at a time, in the order the server received them (and each client's in the
order it sent them), and the server's memory after the 20th job is within 5 % of after the first.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest
from test_app import submit, wait_until
from test_crash import AppProcess

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the server's memory")
JOBS, CLIENTS = 20, 4
MEMORY_TOLERANCE = 0.05


def rss_bytes(pid: int) -> int:
    """Resident memory of the process (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def rows(database: Path) -> list[tuple]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as connection:
        return connection.execute("SELECT id, status, started_at, finished_at, request FROM jobs ORDER BY id").fetchall()


def test_twenty_jobs_from_four_clients_finish_in_order_and_memory_stays_flat(models_dir, photo, tmp_path):
    import json

    from gradio_client import Client

    outputs = tmp_path / "outputs"
    database = outputs / "history.sqlite3"
    app = AppProcess(models_dir, outputs, tmp_path / "temp", tmp_path / "app.log")
    try:
        clients = [Client(app.url, verbose=False, download_files=str(tmp_path / f"c{number}"))
                   for number in range(CLIENTS)]
        # The first job is longer, so that the other 19 are all queued behind it while it runs: the memory
        # "after the first" is then taken with the whole burst waiting (threads, sessions), as after the last.
        first = submit(clients[0], photo, seed=1000, num_inference_steps=50)
        wait_until(lambda: first.outputs(), 60, "the first job to be queued")

        sent: dict[int, list[int]] = {number: [] for number in range(CLIENTS)}  # client -> seeds in sending order
        jobs, failures = [], []

        def client_work(number: int) -> None:
            try:
                # The 19 jobs after the first: 5, 5, 5 and 4 per client.
                for index in range((JOBS - 1) // CLIENTS + (number < (JOBS - 1) % CLIENTS)):
                    seed = 1001 + number * 100 + index
                    sent[number].append(seed)
                    job = submit(clients[number], photo, seed=seed, live_preview=False)
                    # The next job of this client goes only once the server has queued this one.
                    wait_until(lambda: job.outputs() or job.done(), 60, "the job to be queued")
                    jobs.append(job)
            except Exception as error:  # noqa: BLE001 - reported by the main thread
                failures.append(error)

        started = time.monotonic()
        threads = [threading.Thread(target=client_work, args=(number,)) for number in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failures, failures
        wait_until(lambda: rows(database)[0][1] == "done", 300, "the first job to finish")
        after_first = rss_bytes(app.process.pid)
        queued_before_first_ended = len(rows(database))
        first.result(timeout=60)
        results = [job.result(timeout=300) for job in jobs]
        elapsed = time.monotonic() - started
        time.sleep(1.0)  # let the last job's handler and Gradio's bookkeeping finish
        after_last = rss_bytes(app.process.pid)
    finally:
        app.stop()

    assert len(results) + 1 == JOBS and all(Path(result[1]["output"]).is_file() for result in results)
    history = rows(database)
    assert [status for _, status, *_ in history] == ["done"] * JOBS
    seeds = [json.loads(request)["seed"] for *_, request in history]
    # One at a time, in the order the server received them.
    for earlier, later in zip(history, history[1:]):
        assert earlier[3] <= later[2], f"job {later[0]} started before job {earlier[0]} ended"
    # Each client's jobs in the order it sent them.
    for number, client_seeds in sent.items():
        assert [seed for seed in seeds if seed in client_seeds] == client_seeds
    assert queued_before_first_ended == JOBS, "the burst was not all queued while the first job ran"
    growth = (after_last - after_first) / after_first
    print(f"load: {JOBS} jobs from {CLIENTS} clients in {elapsed:.1f} s; server RSS after job 1 "
          f"{after_first / 2**20:.0f} MB, after job {JOBS} {after_last / 2**20:.0f} MB ({growth:+.1%})")
    assert abs(growth) <= MEMORY_TOLERANCE

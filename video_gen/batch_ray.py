"""Batches on a Ray cluster: one worker (a Ray actor holding a resident `Generator`) per GPU, or per N cores
on nodes without one. Ray is the scheduler and the transport; this module only feeds it the batch's lines.

- Each line's request goes to an idle worker as plain data, with the bytes of its pictures (so a worker that
  cannot see the driver's disk still has them; one that can uses the file itself when its hash is the same).
- A worker writes its video into `worker_outputs_dir` (default: the outputs folder's path). When the driver
  then sees that file with the same hash where it belongs, it stays; otherwise the worker sends the bytes
  back and the driver writes them atomically into its outputs folder (`.partial`, then a rename).
- A worker that dies (its node went away, `ray.kill`) loses its line, which runs again on another worker, at
  most `max_retries` times. Results are recorded on the driver, in the same results JSONL and by the same
  resume rule as a local batch (`batch.Results`, written in line order).
- Ctrl+C asks the running jobs to cancel, then stops the workers; every finished line is already recorded.

Needs the `[ray]` extra (`pip install "video-gen[ray]"`): importing this module imports ray.
"""

from __future__ import annotations

import collections
import hashlib
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

from . import video_io
from .batch import (FAILED, PICTURE_FIELDS, SUCCESS, BatchCallback, BatchLine, BatchSummary, Results,
                    Tally, error_entry, output_sha256, run_line)
from .errors import InvalidRequest, first_line
from .checkpoints import default_models_dir
from .request import GenerationRequest

DEFAULT_CPUS_PER_WORKER = 4  # a CPU-only worker's torch threads; more per job gained little in our CPU runs
MAX_RETRIES = 2  # a line whose worker died runs again at most this many times (a line that kills workers stops)
# After Ctrl+C, how long running jobs get to stop at their next step (and free their memory) before the workers
# are killed anyway; a kill loses nothing either: outputs are written under a temporary name and renamed.
CANCEL_WAIT_S = 2.0
CONTROL = "control"  # the workers' concurrency group for cancel/fetch, so they run while a job does


@ray.remote(concurrency_groups={CONTROL: 1})
class BatchWorker:
    """A Ray actor holding one resident `Generator` over its node's models folder."""

    def __init__(self, models_dir: str, outputs_dir: str, device: str | None, extra_models_dirs: Sequence[str],
                 allow_pickle: bool, threads: int | None):
        if threads:
            import torch

            torch.set_num_threads(threads)  # the cores Ray gave this worker, not every core of the node
        from .engine import Generator
        from .history import History

        # Each worker keeps its job history in memory: workers on several machines would otherwise share one
        # SQLite file in a shared outputs folder, and WAL "does not work over a network filesystem"
        # (https://www.sqlite.org/wal.html). The batch's results file is the record of its jobs.
        self.generator = Generator(models_dir=models_dir, outputs_dir=outputs_dir, device=device,
                                   extra_models_dirs=extra_models_dirs, allow_pickle=allow_pickle,
                                   history=History(":memory:"))
        self.pictures = Path(tempfile.mkdtemp(prefix="video-gen-batch-pictures-"))

    def node(self) -> dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid(), "device": self.generator.device}

    def run(self, line: int, request: dict[str, Any], pictures: dict[str, tuple[str, str, bytes]], source: str,
            duration_s: float | None) -> dict[str, Any]:
        """One line: the same `batch.run_line` as a local batch; returns its results entry."""
        request = GenerationRequest.from_dict(request)
        local = request.replace(**{name: self._picture(*pictures[name]) for name in pictures})
        entry = run_line(self.generator, BatchLine(line, local, source=source), duration_s)
        entry.pop("job", None)  # a number in this worker's own history, which is kept in memory only
        return {**entry, "host": socket.gethostname(), "worker": os.getpid()}

    def _picture(self, path: str, sha256: str, data: bytes) -> str:
        """The picture on this node: the driver's own file when this node sees it unchanged, else its bytes."""
        if os.path.isfile(path) and _bytes_sha256(Path(path).read_bytes()) == sha256:
            return path
        copy = self.pictures / f"{sha256[:24]}{Path(path).suffix.lower()[:10]}"
        if not copy.exists():
            with video_io.atomic_path(copy) as temporary:
                temporary.write_bytes(data)
        return str(copy)

    @ray.method(concurrency_group=CONTROL)
    def cancel(self) -> bool:
        return self.generator.cancel()

    @ray.method(concurrency_group=CONTROL)
    def fetch(self, output: str) -> list[tuple[str, bytes]]:
        """An output's files as (name relative to the output, bytes): the file itself (name ""), or a PNG
        folder's frames; then its settings file (name ".json")."""
        path = Path(output)
        files = ([(file.name, file.read_bytes()) for file in sorted(path.iterdir()) if file.is_file()]
                 if path.is_dir() else [("", path.read_bytes())])
        sidecar = video_io.sidecar_path(path)
        if sidecar.is_file():
            files.append((".json", sidecar.read_bytes()))
        return files

    @ray.method(concurrency_group=CONTROL)
    def remove(self, output: str) -> None:
        """Delete an output once the driver has its copy."""
        path = Path(output)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        video_io.sidecar_path(path).unlink(missing_ok=True)


# ---- connecting --------------------------------------------------------------------------------------------
def connect(address: str) -> bool:
    """Join the Ray cluster `address` means: "auto" (the one this machine joined with `ray start`), "local"
    (start one in this process), or a head's HOST:PORT. Returns whether this call connected (and so must
    disconnect); an already connected driver (a test, a notebook) is used as it is. Raises InvalidRequest
    (one line) when no cluster answers."""
    if ray.is_initialized():
        return False
    quiet = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address == "local":
        ray.init(address="local", _node_ip_address="127.0.0.1", **quiet)
        return True
    if address != "auto":
        host, _, port = address.removeprefix("ray://").rpartition(":")
        if not host or not port.isdigit():
            raise InvalidRequest("ray", f"must be auto, local or HOST:PORT (the head's address), got {address!r}")
        try:  # Ray itself retries an unreachable address for a minute; a closed port is known at once
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as error:
            raise InvalidRequest("ray", f"cannot reach a Ray cluster at {address} ({error.strerror or error}); "
                                        "start one with `ray start --head` on that machine") from None
    try:
        ray.init(address=address, **quiet)
    except ConnectionError as error:
        if address == "auto":
            raise InvalidRequest("ray", "no running Ray cluster found on this machine (--ray auto); start one with "
                                        "`ray start --head` or join one with `ray start --address HEAD:6379`, or "
                                        "use --ray local") from None
        raise InvalidRequest("ray", f"no Ray cluster at {address} ({first_line(error)}); start one with "
                                    "`ray start --head` on that machine") from None
    return True


def disconnect() -> None:
    """Leave the cluster `connect` joined (a cluster started by "local" stops)."""
    ray.shutdown()


def worker_options(cpus_per_worker: int | None, max_workers: int | None) -> tuple[int, dict[str, Any], int | None]:
    """(how many workers, their Ray resources, their torch threads): one per GPU of the cluster; without GPUs,
    one per `cpus_per_worker` cores (at most the largest node's cores, so that every worker can be placed)."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus:
        count, options, threads = gpus, {"num_gpus": 1, "num_cpus": 1}, None
    else:
        node_cpus = [int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node.get("Alive")]
        per_worker = max(1, min(cpus_per_worker or DEFAULT_CPUS_PER_WORKER, max(node_cpus, default=1)))
        count = max(1, sum(cpus // per_worker for cpus in node_cpus))
        options, threads = {"num_cpus": per_worker}, per_worker
    if max_workers is not None:
        if max_workers < 1:
            raise InvalidRequest("ray_workers", f"must be at least 1, got {max_workers}")
        count = min(count, max_workers)
    return count, options, threads


# ---- running -----------------------------------------------------------------------------------------------
def run_ray(lines: Sequence[BatchLine], results: Results, *, address: str = "auto", models_dir=None,
            outputs_dir="outputs", device: str | None = None, extra_models_dirs=(), allow_pickle: bool = False,
            cpus_per_worker: int | None = None, max_workers: int | None = None, worker_outputs_dir=None,
            duration_s: float | None = None, max_retries: int = MAX_RETRIES,
            on_event: BatchCallback | None = None) -> BatchSummary:
    """Run a batch on Ray workers (see the module's docstring); the same results and resume rule as `run_local`.
    `models_dir` is each node's own path to its models folder (the same path on every node)."""
    tally = Tally(lines, results, on_event)
    todo = collections.deque(tally.pending(lines))
    if not todo:
        return tally.summary
    outputs_dir = Path(outputs_dir).resolve()
    # Absolute, from the driver: a worker's current folder is Ray's own (the default `./models` means nothing there)
    models_dir = Path(models_dir or default_models_dir()).resolve()
    started = connect(address)
    workers: list = []
    try:
        count, options, threads = worker_options(cpus_per_worker, max_workers)
        worker_dir = str(Path(worker_outputs_dir).resolve()) if worker_outputs_dir else str(outputs_dir)
        prefix = f"video-gen-batch-{secrets.token_hex(4)}"  # named, so that `ray list actors` says what they are
        workers = [BatchWorker.options(name=f"{prefix}-{number}", **options).remote(
            str(models_dir), worker_dir, device,
            [str(Path(folder).resolve()) for folder in extra_models_dirs], allow_pickle, threads)
            for number in range(min(count, len(todo)))]
        _feed(todo, workers, tally, outputs_dir, duration_s, max_retries)
    finally:
        for worker in workers:
            ray.kill(worker)
        if started:
            disconnect()
    return tally.summary


def _feed(todo: collections.deque, workers: list, tally: Tally, outputs_dir: Path, duration_s: float | None,
          max_retries: int) -> None:
    """Give each idle worker the next line until every line is recorded."""
    idle = list(workers)
    running: dict = {}  # ObjectRef -> (worker, line)
    attempts: collections.Counter = collections.Counter()  # line -> how many of its workers died
    try:
        while todo or running:
            while idle and todo:
                item, worker = todo.popleft(), idle.pop(0)
                tally.emit("started", item.line)
                running[_submit(worker, item, duration_s)] = (worker, item)
            if not running:  # lines left but no worker alive
                for item in todo:
                    tally.finish(item, error_entry(item, "every Ray worker died; run the batch again to resume",
                                                   FAILED))
                return
            ready, _ = ray.wait(list(running), num_returns=1)
            worker, item = running.pop(ready[0])
            try:
                entry = ray.get(ready[0])
            except (RayActorError, WorkerCrashedError) as error:
                workers.remove(worker)  # a dead worker is not used again
                attempts[item.line] += 1
                tally.summary.retries += 1
                if attempts[item.line] <= max_retries:
                    todo.appendleft(item)
                else:
                    tally.finish(item, error_entry(item, f"its Ray worker died {attempts[item.line]} times "
                                                         f"({first_line(error)})", FAILED))
                continue
            except RayTaskError as error:  # the worker's own code failed outside the job (a picture it could not
                idle.append(worker)      # write, say): that line errors, the worker goes on
                tally.finish(item, error_entry(item, f"on the Ray worker: {first_line(error.cause)}", FAILED))
                continue
            idle.append(worker)
            entry["request_sha256"] = item.fingerprint  # the line as the driver read it decides the resume rule
            if entry["status"] == SUCCESS:
                entry = _collect(worker, entry, item, outputs_dir)
            tally.finish(item, entry)
    except KeyboardInterrupt:
        for worker, _ in running.values():
            worker.cancel.remote()  # the job stops at its next step and writes nothing
        if running:
            ray.wait(list(running), num_returns=len(running), timeout=CANCEL_WAIT_S)
        raise


def _submit(worker, item: BatchLine, duration_s: float | None):
    """The line's request as data (its output path absolute: a worker's current folder is Ray's), with the bytes
    of the pictures the driver can read."""
    request = item.request
    if request.output_path:
        request = request.replace(output_path=str(Path(request.output_path).resolve()))
    pictures = {}
    for name in PICTURE_FIELDS:
        path = getattr(item.request, name)
        if path and os.path.isfile(path):
            data = Path(path).read_bytes()
            pictures[name] = (str(Path(path).resolve()), _bytes_sha256(data), data)
    return worker.run.remote(item.line, request.to_dict(), pictures, item.source, duration_s)


def _collect(worker, entry: dict[str, Any], item: BatchLine, outputs_dir: Path) -> dict[str, Any]:
    """The output where the driver wants it: left in place when the driver sees it there with the worker's hash,
    else sent back as bytes and written atomically (the worker's copy is then removed)."""
    produced = Path(entry["output"])
    wanted = Path(item.request.output_path).resolve() if item.request.output_path else outputs_dir / produced.name
    if produced == wanted and wanted.exists() and output_sha256(wanted) == entry["sha256"]:
        return entry
    files = ray.get(worker.fetch.remote(str(produced)))
    target = wanted if item.request.output_path else video_io.unique_path(wanted)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.parent == outputs_dir:
        video_io.partial_dir(outputs_dir)  # written in the outputs folder's work area, as the engine does
    body = [(name, data) for name, data in files if name != ".json"]
    with video_io.atomic_path(target) as temporary:
        if body and body[0][0] == "":
            temporary.write_bytes(body[0][1])
        else:  # a PNG folder
            temporary.mkdir()
            for name, data in body:
                (temporary / name).write_bytes(data)
    for name, data in files:
        if name == ".json":
            with video_io.atomic_path(video_io.sidecar_path(target)) as temporary:
                temporary.write_bytes(data)
    if output_sha256(target) != entry["sha256"]:
        return {**entry, "status": "error", "output": None, "kind": FAILED,
                "error": f"the video sent back by the worker on {entry.get('host')} is damaged (hash differs)"}
    try:  # waited for, so that when the batch ends no worker still holds a copy (the test found one left)
        ray.get(worker.remove.remote(str(produced)))
    except (RayActorError, WorkerCrashedError):
        pass  # the worker died after sending the video: the driver's copy is whole, its own is not ours to delete
    return {**entry, "output": str(target), "sent_back": True}


def _bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


__all__ = ["run_ray", "connect", "disconnect", "worker_options", "BatchWorker"]

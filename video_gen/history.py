"""Every job the web app was given, in one SQLite file in the outputs folder (`history.sqlite3`).

A row per job: its request (the `GenerationRequest` as JSON, the one schema), its status, when it was
queued, started and finished, what it wrote and what went wrong. Jobs still `queued` when the app
stops are run after a restart; a job found `running` at start-up was cut off by a crash or a kill
and becomes `interrupted`.

WAL journaling, so a reader (the page's gallery, `video-gen history`) never waits for a writer and a
kill -9 mid-write loses at most the transaction in flight, never the file. One connection shared by
the app's threads behind a lock: SQLite serialises writers anyway, and the app writes a few rows a
minute. The schema is versioned with `PRAGMA user_version`; `_MIGRATIONS[n]` takes version n to n+1.
Standard library only: importing this loads no torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

FILENAME = "history.sqlite3"
QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = "queued", "running", "done", "failed", "cancelled", "interrupted"
STATUSES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED)
SCHEMA_VERSION = 1

_MIGRATIONS = [
    # 0 -> 1
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        request TEXT NOT NULL,              -- GenerationRequest.to_json()
        status TEXT NOT NULL,               -- one of STATUSES
        queued_at TEXT NOT NULL,            -- ISO 8601, local time
        started_at TEXT,
        finished_at TEXT,
        elapsed_s REAL,
        output TEXT,                        -- the video file or PNG folder written
        error TEXT,                         -- one line, for failed jobs
        info TEXT,                          -- the page's info panel (JSON) for done jobs
        rerun_of INTEGER                    -- the job this one repeats, if any
    );
    CREATE INDEX jobs_status ON jobs(status);
    """,
]


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    request: dict[str, Any]
    status: str
    queued_at: str
    started_at: str | None
    finished_at: str | None
    elapsed_s: float | None
    output: str | None
    error: str | None
    info: dict[str, Any] | None
    rerun_of: int | None

    @property
    def output_exists(self) -> bool:
        return bool(self.output) and os.path.exists(self.output)


INPUTS_DIRNAME = ".inputs"  # in the outputs folder: the pictures of queued and past jobs, for re-runs


def keep_input(image: str | None, store: History) -> str | None:
    """A copy of a job's picture in the outputs folder (named by its content), so that a queued job or a
    re-run still has it after the original is gone; a store kept in memory keeps the path as it is."""
    if str(store.path) == ":memory:" or not image or not Path(image).is_file():
        return image
    source = Path(image).absolute()
    folder = store.outputs_dir.absolute() / INPUTS_DIRNAME
    if source.resolve().parent == folder.resolve():
        return str(source)
    digest = hashlib.sha256()
    with open(source, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    target = folder / f"{digest.hexdigest()[:24]}{source.suffix.lower()[:10]}"
    if not target.exists():
        from .video_io import atomic_path

        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as temporary:
            shutil.copyfile(source, temporary)
    return str(target)


def history_path(outputs_dir: str | os.PathLike) -> Path:
    return Path(outputs_dir) / FILENAME


def _now() -> str:
    return datetime.now().isoformat(timespec="milliseconds")


class History:
    """The job store. Safe to share between threads."""

    def __init__(self, path: str | os.PathLike, outputs_dir: str | os.PathLike | None = None):
        """`path`: the database file (":memory:" for a store that ends with the process). `outputs_dir`: the
        only folder whose files `delete` removes; default the database's folder."""
        self.path = Path(path)
        self.outputs_dir = Path(outputs_dir) if outputs_dir is not None else self.path.parent
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # check_same_thread=False: the page's handlers and the job threads share it, behind self._lock.
        # timeout: another process (`video-gen history`) may hold the write lock for a moment.
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=10, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process kill
            self._migrate()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} was written by a newer video-gen (schema {version}, this one knows "
                               f"{SCHEMA_VERSION}); upgrade video-gen")
        for number in range(version, SCHEMA_VERSION):
            # One transaction per step (executescript would commit on its own), so a crash mid-migration
            # leaves the previous version intact.
            self._db.execute("BEGIN IMMEDIATE")
            for statement in _MIGRATIONS[number].split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {number + 1}")
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- writing ---------------------------------------------------------------------------
    def add(self, request_json: str, *, status: str = QUEUED, rerun_of: int | None = None) -> int:
        """A new job; returns its id (ids grow in submission order). Its pictures' paths are stored absolute."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO jobs (request, status, queued_at, rerun_of) VALUES (?, ?, ?, ?)",
                (absolute_request(request_json), status, _now(), rerun_of))
            return int(cursor.lastrowid)

    def started(self, job_id: int) -> None:
        self._update(job_id, status=RUNNING, started_at=_now())

    def finished(self, job_id: int, status: str, *, output: str | None = None, error: str | None = None,
                 info: dict[str, Any] | None = None, elapsed_s: float | None = None,
                 request_json: str | None = None) -> None:
        # Absolute: a relative --outputs-dir means another thing from another folder (issue 29: the page, started
        # elsewhere, lost the videos a CLI batch had made with `--outputs-dir repo/outputs`).
        output = os.path.abspath(output) if output else output
        changes: dict[str, Any] = {"status": status, "finished_at": _now(), "output": output, "error": error,
                                   "info": json.dumps(info, default=str) if info is not None else None,
                                   "elapsed_s": elapsed_s}
        if request_json is not None:  # the request as run: model defaults and the seed filled in
            changes["request"] = absolute_request(request_json)
        self._update(job_id, **changes)

    def _update(self, job_id: int, **changes: Any) -> None:
        if changes.get("status", QUEUED) not in STATUSES:
            raise ValueError(f"unknown status {changes['status']!r}")
        columns = ", ".join(f"{name} = ?" for name in changes)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {columns} WHERE id = ?", (*changes.values(), job_id))

    def mark_interrupted(self) -> list[int]:
        """Jobs left `running` by a process that died: they become `interrupted`. Returns their ids."""
        with self._lock:
            ids = [row[0] for row in self._db.execute("SELECT id FROM jobs WHERE status = ?", (RUNNING,))]
            self._db.execute("UPDATE jobs SET status = ?, finished_at = ?, error = ? WHERE status = ?",
                             (INTERRUPTED, _now(), "the app stopped while this job was running", RUNNING))
        return ids

    def delete(self, job_id: int, *, remove_output: bool = True) -> HistoryEntry | None:
        """Remove the job's row, and its output file (or PNG folder) and the settings file beside it."""
        entry = self.get(job_id)
        if entry is None:
            return None
        if remove_output and entry.output:
            _remove_output(Path(entry.output), self.outputs_dir)
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        return entry

    # ---- reading ---------------------------------------------------------------------------
    def get(self, job_id: int) -> HistoryEntry | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (int(job_id),)).fetchone()
        return self._entry(row) if row else None

    def entries(self, *, status: str | None = None, limit: int | None = None, newest_first: bool = True
                ) -> list[HistoryEntry]:
        query, arguments = "SELECT * FROM jobs", []
        if status is not None:
            query += " WHERE status = ?"
            arguments.append(status)
        query += " ORDER BY id " + ("DESC" if newest_first else "ASC")
        if limit is not None:
            query += " LIMIT ?"
            arguments.append(int(limit))
        with self._lock:
            rows = self._db.execute(query, arguments).fetchall()
        return [self._entry(row) for row in rows]

    def signature(self) -> tuple:
        """Changes whenever a job is added, starts, ends or is deleted, from this process or another (the page
        follows the history with it: a job from the command line appears, a cancelled one stops "running")."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*), MAX(id), MAX(started_at), MAX(finished_at), SUM(status = 'running'), "
                "SUM(status = 'queued') FROM jobs").fetchone()
        return tuple(row)

    def _entry(self, row: sqlite3.Row) -> HistoryEntry:
        """A row as an entry; a relative path of a row written before paths were stored absolute is resolved
        against the folder it was made in (`resolve_old_path`)."""
        entry = _entry(row)
        if entry.output and not os.path.isabs(entry.output) or _has_relative_pictures(entry.request):
            request = _relative_pictures(entry.request, lambda path: resolve_old_path(path, self.outputs_dir))
            output = resolve_old_path(entry.output, self.outputs_dir) if entry.output else entry.output
            entry = dataclasses.replace(entry, request=request, output=output)
        return entry

    def queued(self) -> list[HistoryEntry]:
        """Jobs waiting to run, oldest first."""
        return self.entries(status=QUEUED, newest_first=False)


def absolute_request(request_json: str) -> str:
    """A stored request with its pictures' paths made absolute (against the current folder)."""
    try:
        request = json.loads(request_json)
    except json.JSONDecodeError:
        return request_json
    if not isinstance(request, dict) or not _has_relative_pictures(request):
        return request_json
    return json.dumps(_relative_pictures(request, os.path.abspath), sort_keys=True)


def _is_relative(path) -> bool:
    return isinstance(path, str) and bool(path) and not os.path.isabs(path)


def _has_relative_pictures(request: dict) -> bool:
    paths = [request.get("image"), request.get("last_image")] + [
        item.get("image") for item in request.get("keyframes") or () if isinstance(item, dict)]
    return any(_is_relative(path) for path in paths)


def _relative_pictures(request: dict, fix) -> dict:
    """`request` with `fix` applied to each relative path of its pictures (the picture, the last frame, the
    keyframes'): the one walk for making them absolute when stored and for resolving an old row's."""
    def fixed(path):
        return fix(path) if _is_relative(path) else path

    request = {**request, **{key: fixed(request[key]) for key in ("image", "last_image") if key in request}}
    if isinstance(request.get("keyframes"), list):
        request["keyframes"] = [{**item, "image": fixed(item["image"])} if isinstance(item, dict) and "image" in item
                                else item for item in request["keyframes"]]
    return request


def resolve_old_path(path: str, outputs_dir: Path) -> str:
    """A relative path stored by an older version, as it was meant: relative to the folder the job was run from.

    That folder is not stored, but the history lies in the outputs folder, which the path was made from: the
    folder is the ancestor of the outputs folder from which the path exists (or, for a file since deleted, from
    which it lands in the outputs folder or its `.inputs/`). Otherwise the current folder, as before."""
    home = Path(outputs_dir).absolute()
    bases = [home, *home.parents]
    for base in bases:
        if (base / path).exists():
            return str(base / path)
    for base in bases:
        if (base / path).parent in (home, home / INPUTS_DIRNAME):
            return str(base / path)
    return os.path.abspath(path)


def _entry(row: sqlite3.Row) -> HistoryEntry:
    return HistoryEntry(
        id=row["id"], request=json.loads(row["request"]), status=row["status"], queued_at=row["queued_at"],
        started_at=row["started_at"], finished_at=row["finished_at"], elapsed_s=row["elapsed_s"],
        output=row["output"], error=row["error"], info=json.loads(row["info"]) if row["info"] else None,
        rerun_of=row["rerun_of"])


def _remove_output(output: Path, outputs_dir: Path) -> None:
    """Delete an output only if it lies in the outputs folder: a history row never deletes elsewhere."""
    try:
        inside = output.resolve().is_relative_to(outputs_dir.resolve())
    except OSError:
        return
    if not inside:
        return
    if output.is_dir() and not output.is_symlink():
        shutil.rmtree(output, ignore_errors=True)
    else:
        output.unlink(missing_ok=True)
    sidecar = output.with_name(f"{output.stem if output.suffix else output.name}.json")
    sidecar.unlink(missing_ok=True)


__all__ = ["History", "HistoryEntry", "history_path", "FILENAME", "STATUSES", "QUEUED", "RUNNING", "DONE", "FAILED",
           "CANCELLED", "INTERRUPTED", "SCHEMA_VERSION"]

"""Several pictures dropped at once on the Generate tab: one queued job each, with the form's settings.

The box lives under the picture on the Generate tab. Its button (and the API endpoint `/generate_batch`, whose
inputs are `images` (a list of files) and then the `/generate` inputs after `image`, by name) checks each picture
with the form's settings into the engine's `PreparedJob`, puts every good one in the job board's queue (one job
at a time, in order, in the history: the gallery shows each video when it is done) and then follows them: a
table of pictures with their state, and at the end a list with each picture's job, status, output and error.
A bad picture is one row saying why; the others still run. It shares the Generate tab's result panel (issue
29): its button is disabled until there are pictures and a model, Cancel (the tab's) stops every job of the tab,
these included, and the tab's status line and player follow the batch (the picture running, the last video
made).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr

from ..errors import InvalidRequest, first_line
from .components import FileInput, checked_data_model, session_of, user_error
from .fields import api_handler
from .jobs import CANCELLED, DONE, JobEnded
from .panel import PRIVATE, wire_ready
from .progress import status_box, status_error

WAITING, RUNNING, ERROR = "waiting", "running", "error"


class BatchBox:
    """The "several pictures" box of the Generate tab (`GenerateTab` builds and wires it)."""

    def __init__(self, tab):
        self.tab = tab
        self._latest: dict[str, tuple[str, Any]] = {}  # session -> (its status line, its last finished record)

    def build(self) -> None:
        with gr.Accordion("Several pictures: one video each", open=False, elem_id="vg-batch-box"):
            self.images = FileInput(file_count="multiple", file_types=["image"], elem_id="vg-batch-images",
                                    label="Drop several pictures: each becomes one job with the settings below")
            self.images.data_model = checked_data_model(self.images.data_model, "images",
                                                         "a list of pictures (gradio_client: [handle_file(path), ...])")
            self.button = gr.Button("Queue one job per picture", elem_id="vg-batch-queue", interactive=False)
            self.reason = gr.Markdown("", elem_id="vg-batch-reason")
            self.status = gr.HTML("", elem_id="vg-batch-status")
            self.result = gr.JSON(visible=False, elem_id="vg-batch-result")

    def wire(self, demo: gr.Blocks) -> None:
        tab, panel = self.tab, self.tab.panel
        inputs = {"images": self.images, **{name: control for name, control in tab.form.api_inputs().items()
                                            if name != "image"}}
        # The Generate tab's panel: Cancel on and the old result cleared first, Cancel off at the end
        self.event = panel.wire_run(self.button, api_handler(self.queue, list(inputs)), inputs_kwargs=inputs,
                                    outputs=[self.status, self.result], api_name="generate_batch",
                                    concurrency_limit=None, concurrency_id="watch", show_progress="hidden",
                                    preprocess=False)
        # The new videos, as after Generate: the history tab redraws after this event too (history_tab.py)
        # The tab's status line and player follow the batch (issue 29: batch jobs never updated the status)
        self.status.change(self.follow, None, [panel.status, panel.player, panel.info, panel.download,
                                               tab.seed_used], **PRIVATE)
        ready = [self.images, tab.form["model"]]
        wire_ready([self.images.change, tab.form["model"].change, demo.load], ready, self.reason_text, [self.button],
                   self.reason, preprocess=False)

    def reason_text(self, images, model) -> str:
        if not model or all(info.name != model for info in self.tab.picker.models()):
            return "Needs a model: install one (or the demo model) first."
        if not images:
            return "Drop two or more pictures above: each becomes one job with the settings below."
        return ""

    def follow(self, http: gr.Request = None):
        """The batch's latest state on the tab's status line and player: the picture running (or the summary at
        the end) and the last video made."""
        line, record = self._latest.get(session_of(http), (None, None))
        if line is None:
            return (gr.skip(),) * 5
        if record is None:
            return line, gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return line, str(record.playable), record.info, gr.update(value=str(record.download), interactive=True), \
            str(record.seed)

    def queue(self, http: gr.Request | None, images=None, **values):
        """Queue one video per picture, with the same settings; streams each picture's state.

        Parameters:
            images: the pictures (a list; gradio_client: [handle_file(path), ...]), one job each
            the other inputs: as /generate's, after `image`, by name (model, duration, fps, resolution, ...)
        Returns:
            status: a table of the pictures and their state (HTML)
            result: one entry per picture: picture, job (its number in the history), status (done, failed,
            cancelled, or error when the picture or a setting was refused), output (the file on the server),
            error
        """
        pictures = _pictures(images)
        session = session_of(http)
        self._latest.pop(session, None)
        rows: list[dict[str, Any]] = []
        jobs = []
        for name, path in pictures:
            row = {"picture": name, "job": None, "status": WAITING, "output": None, "error": None}
            try:
                job = self.tab.board.submit(self.tab.prepare({**values, "image": path}), session)
            except InvalidRequest as error:  # this picture or a setting is wrong, or the queue is full
                row.update(status=ERROR, error=first_line(error).replace(str(path), name))
            else:
                row["job"] = job.history_id
                jobs.append((row, job))
            rows.append(row)
        if not jobs and len({row["error"] for row in rows}) == 1:  # one setting refused for all: say it once
            self._latest[session] = (status_error(rows[0]["error"], "queue the pictures"), None)
            yield "", gr.skip()  # said once, on the tab's status line
            raise user_error(rows[0]["error"], toast=False)
        last = None
        self._latest[session] = (_line(rows, None), None)
        yield _table(rows), gr.skip()
        try:
            for row, job in jobs:
                for messages in job.batches():
                    ended = next((message for message in messages if isinstance(message, JobEnded)), None)
                    if ended is not None:
                        _ended(row, ended)
                        last = ended.record or last
                        self._latest[session] = (_line(rows, None), last)
                        yield _table(rows), gr.skip()
                    elif row["status"] == WAITING and job.started is not None:
                        row["status"] = RUNNING
                        self._latest[session] = (_line(rows, row), last)
                        yield _table(rows), gr.skip()
        finally:
            for _, job in jobs:  # Cancel, or the tab closed: the rest of the batch does not run either
                if not job.finished.is_set():
                    self.tab.board.cancel_job(job)
        self._latest[session] = (_line(rows, None, done=True), last)
        yield _table(rows), rows


def _line(rows: list[dict[str, Any]], running: dict[str, Any] | None, *, done: bool = False) -> str:
    """The Generate tab's status line for a batch."""
    finished = sum(row["status"] not in (WAITING, RUNNING) for row in rows)
    made = sum(row["status"] == DONE for row in rows)
    if done:
        failed = len(rows) - made
        text = f"<b>Done</b>: the batch made {made} of {len(rows)} videos" + (
            f"; {failed} did not run (see the table under the pictures)" if failed else "")
        return status_box(text, "done" if not failed else "cancelled")
    now = f" · running {html.escape(running['picture'])} (job {running['job']})" if running else ""
    return status_box(f"<b class='vg-stage'>Batch: {finished} of {len(rows)} finished</b>{now}", "busy")


def _pictures(images) -> list[tuple[str, str]]:
    """(name shown, file) of each uploaded picture; the payload is Gradio's (the event skips preprocessing)."""
    if images is None or images == []:
        # the page's button is disabled until there are pictures: this is an API client's mistake
        raise user_error("images: drop one or more pictures (gradio_client: [handle_file(path), ...])")
    if isinstance(images, dict):
        images = [images]
    if not isinstance(images, list) or not all(isinstance(item, dict) and item.get("path") for item in images):
        raise user_error(f"images: must be a list of pictures (gradio_client: [handle_file(path), ...]), "
                         f"got {str(images)[:80]}")
    return [(item.get("orig_name") or Path(item["path"]).name, item["path"]) for item in images]


def _ended(row: dict[str, Any], ended: JobEnded) -> None:
    if ended.outcome == DONE:
        row.update(status=DONE, output=str(ended.record.path))
    elif ended.outcome == CANCELLED:
        row.update(status=CANCELLED)
    else:
        row.update(status="failed", error=ended.message)


def _table(rows: list[dict[str, Any]]) -> str:
    finished = sum(row["status"] not in (WAITING, RUNNING) for row in rows)
    body = "".join(
        f"<tr><td>{html.escape(row['picture'])}</td><td>{row['job'] or ''}</td>"
        f"<td class='vg-batch-{row['status']}'>{html.escape(row['status'])}</td>"
        f"<td>{html.escape(Path(row['output']).name if row['output'] else row['error'] or '')}</td></tr>"
        for row in rows)
    return (f"<div><b>{finished} of {len(rows)} finished</b><table><tr><th>picture</th><th>job</th>"
            f"<th>state</th><th>video or error</th></tr>{body}</table></div>")


__all__ = ["BatchBox"]

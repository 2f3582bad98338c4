"""Several pictures dropped at once on the Generate tab: one queued job each, with the form's settings.

The box lives under the picture on the Generate tab. Its button (and the API endpoint `/generate_batch`, whose
inputs are `images` (a list of files) and then the `/generate` inputs after `image`, by name) checks each picture
with the form's settings into the engine's `PreparedJob`, puts every good one in the job board's queue (one job
at a time, in order, in the history: the gallery shows each video when it is done) and then follows them: a
table of pictures with their state, and at the end a list with each picture's job, status, output and error.
A bad picture is one row saying why; the others still run. Cancel stops every job of the tab, these included.
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

WAITING, RUNNING, ERROR = "waiting", "running", "error"


class BatchBox:
    """The "several pictures" box of the Generate tab (`GenerateTab` builds and wires it)."""

    def __init__(self, tab):
        self.tab = tab

    def build(self) -> None:
        with gr.Accordion("Several pictures: one video each", open=False, elem_id="vg-batch-box"):
            self.images = FileInput(file_count="multiple", file_types=["image"], elem_id="vg-batch-images",
                                    label="Drop several pictures: each becomes one job with the settings below")
            self.images.data_model = checked_data_model(self.images.data_model, "images",
                                                         "a list of pictures (gradio_client: [handle_file(path), ...])")
            self.button = gr.Button("Queue one job per picture", elem_id="vg-batch-queue")
            self.status = gr.HTML("", elem_id="vg-batch-status")
            self.result = gr.JSON(visible=False, elem_id="vg-batch-result")

    def wire(self, demo: gr.Blocks) -> None:
        inputs = {"images": self.images, **{name: control for name, control in self.tab.form.api_inputs().items()
                                            if name != "image"}}
        event = self.button.click(api_handler(self.queue, list(inputs)), inputs_kwargs=inputs,
                                  outputs=[self.status, self.result],
                                  api_name="generate_batch", concurrency_limit=None, concurrency_id="watch",
                                  trigger_mode="once", show_progress="hidden", preprocess=False)
        history, private = self.tab.web.history_tab, dict(queue=False, api_visibility="private", show_progress="hidden")
        event.then(history.gallery, None, [self.tab.gallery], **private).then(  # the new videos, as after Generate
            history.history_rows, None, [history.table], **private)

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
            raise user_error(rows[0]["error"])
        yield _table(rows), gr.skip()
        for row, job in jobs:
            for messages in job.batches():
                ended = next((message for message in messages if isinstance(message, JobEnded)), None)
                if ended is not None:
                    _ended(row, ended)
                    yield _table(rows), gr.skip()
                elif row["status"] == WAITING and job.started is not None:
                    row["status"] = RUNNING
                    yield _table(rows), gr.skip()
        yield _table(rows), rows


def _pictures(images) -> list[tuple[str, str]]:
    """(name shown, file) of each uploaded picture; the payload is Gradio's (the event skips preprocessing)."""
    if images is None or images == []:
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

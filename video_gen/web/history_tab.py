"""The History tab: every job across restarts (the engine's `history.History`), and the Generate tab's
gallery of past outputs. A job is chosen by clicking its row or its video; then Re-run: load settings
(`/rerun_settings`: its pictures and settings into the Generate form), Run again now (`/rerun`) or Delete
(`/delete_job`). `/history` lists the jobs for API clients.

Both follow the history as it changes (issue 29), whoever changed it: the page's timer compares the history's
`signature` with the one the page was drawn with, so a job from the command line appears, and a job's status
(running, cancelled, done) changes on the page when it changes. A click on a gallery tile shows that tile's job,
read from the tile itself (its caption names the job), not from its place in a list that may have changed since.
"""

from __future__ import annotations

import re
from typing import Any

import gradio as gr

from ..errors import InvalidRequest
from ..request import GenerationRequest
from .components import session_of, user_error, whole_number
from .jobs import OutputRecord
from .panel import NOTICE, PRIVATE

GALLERY_SIZE = 48  # newest outputs shown; each is a still of its video (a click shows the video)
HISTORY_ROWS = 200  # newest jobs in the history table
HISTORY_HEADERS = ["job", "queued", "status", "model", "seed", "frames", "size", "output or error"]
# Widths that keep each header on one line (issue 29: they wrapped letter by letter); the table scrolls sideways
HISTORY_WIDTHS = ["70px", "170px", "110px", "170px", "120px", "80px", "100px", "480px"]
LIVE_EVERY_S = 2.0  # how often an open page looks whether the history changed (one small query)
JOB_NUMBER = re.compile(r"#(\d+)\b")


class HistoryTab:
    def __init__(self, web):
        self.web = web
        self.board = web.board

    # ---- the gallery (on the Generate tab) ---------------------------------------------------------
    def shown_records(self) -> list[OutputRecord]:
        """Past outputs for the gallery, newest first: every finished job in the history whose file is there."""
        return self.board.past_outputs(GALLERY_SIZE)

    def gallery(self) -> list[tuple[str, str]]:
        return [(str(self.board.still(record)), record.caption) for record in self.shown_records()]

    def clicked_record(self, event: gr.SelectData):
        """The record of the tile that was clicked: the job its caption names (issue 29: the list was read again
        at the click, so a job added since shifted every tile by one)."""
        value = event.value if isinstance(event.value, dict) else {}
        match = JOB_NUMBER.search(str(value.get("caption") or ""))
        entry = self.board.history.get(int(match.group(1))) if match else None
        return self.board.record_of(entry) if entry is not None else None

    def show_output(self, event: gr.SelectData):
        record = self.clicked_record(event)
        if record is None:
            gr.Warning("That video is gone from the history or the disk; the gallery is up to date again.")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), self.gallery()
        record = self.board.playable_record(record)
        return (str(record.playable), record.info, str(record.seed),
                gr.update(value=str(record.download), interactive=True), gr.skip())

    def select_output_job(self, event: gr.SelectData):
        record = self.clicked_record(event)
        return record.history_id if record is not None and record.history_id is not None else gr.skip()

    def follow(self, seen):
        """The page's timer: the table and the gallery again when the history changed since they were drawn."""
        signature = list(self.board.history.signature())
        if seen == signature:
            return gr.skip(), gr.skip(), gr.skip()
        return signature, self.history_rows(), self.gallery()

    def redraw(self):
        """The table and the gallery now (after a job ends, a cancel, Refresh), with the signature they show."""
        return list(self.board.history.signature()), self.history_rows(), self.gallery()

    # ---- the table -------------------------------------------------------------------------------
    def history_rows(self) -> list[list[Any]]:
        """The history table: newest first."""
        rows = []
        for entry in self.board.history.entries(limit=HISTORY_ROWS):
            request = entry.request
            where = entry.output if entry.status == "done" else (entry.error or "")
            rows.append([entry.id, entry.queued_at.replace("T", " ")[:19], entry.status, request.get("model") or "",
                         request.get("seed"), request.get("num_frames"),
                         f"{request.get('width')}x{request.get('height')}", where])
        return rows

    def history_list(self, limit: int = 100) -> list[dict[str, Any]]:
        """Every job in the history, newest first (the API's /history).

        Parameters:
            limit: at most this many jobs
        Returns:
            jobs: each with id, status, queued_at, started_at, finished_at, elapsed_s, output, error, request
        """
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not float(limit).is_integer():
            raise user_error(f"limit: must be a whole number, got {limit!r}")
        return [{"id": entry.id, "status": entry.status, "queued_at": entry.queued_at, "started_at": entry.started_at,
                 "finished_at": entry.finished_at, "elapsed_s": entry.elapsed_s, "output": entry.output,
                 "error": entry.error, "rerun_of": entry.rerun_of, "request": entry.request}
                for entry in self.board.history.entries(limit=int(limit))]

    def select_job(self, event: gr.SelectData):
        row = event.row_value if isinstance(getattr(event, "row_value", None), list) else None
        return row[0] if row else gr.skip()

    def _entry(self, job_id):
        if job_id in (None, "", 0):  # an empty number box sends 0 (issue 29: "no job 0 in the history")
            raise user_error("job: choose a job first (click a row of the history or a video)")
        entry = self.board.history.get(int(job_id))
        if entry is None:
            raise user_error(f"job: no job {job_id} in the history")
        return entry

    def rerun_settings(self, job_id):
        """Load a past job's pictures and settings into the Generate form (re-run with changes).

        Parameters:
            job_id: the job's number in the history
        Returns:
            image and every control of the Generate form, the frames note, a message, then the prompt, negative
            prompt, image strength, memory plan and last frame
        """
        entry = self._entry(job_id)
        try:
            request = GenerationRequest.from_dict(entry.request)
        except InvalidRequest as error:
            raise user_error(str(error)) from None
        return self.web.generate_tab.settings.stored_form(request, f"job {entry.id}", self.job_message, pictures=True)

    def rerun(self, job_id, http: gr.Request = None):
        """Run a past job again, with its picture, settings and seed, in one click (an interrupted one, say).

        Parameters:
            job_id: the job's number in the history
        Returns:
            message: the new job's number; it runs in the queue and its video appears in the history
            table: the history table
        """
        entry = self._entry(job_id)
        try:
            job = self.board.rerun(entry.id, session_of(http))
        except InvalidRequest as error:
            raise user_error(str(error)) from None
        return f"Job {entry.id} queued again as job {job.history_id}.", self.history_rows()

    def delete_job(self, job_id):
        """Delete a past job: its video (and settings file) and its row in the history.

        Parameters:
            job_id: the job's number in the history
        Returns:
            message, table, gallery
        """
        entry = self._entry(job_id)
        try:
            self.board.delete(entry.id)
        except InvalidRequest as error:
            raise user_error(str(error)) from None
        return f"Deleted job {entry.id}.", self.history_rows(), self.gallery()

    # ---- layout ----------------------------------------------------------------------------------
    def build(self) -> None:
        self.table = gr.Dataframe(self.history_rows(), headers=HISTORY_HEADERS, interactive=False, wrap=False,
                                  column_widths=HISTORY_WIDTHS, max_height=500, elem_id="vg-history")
        with gr.Row(equal_height=True):
            self.job_box = whole_number(field="job", label="Job", scale=2, elem_id="vg-job", value=None,
                                        placeholder="click a row or a video",
                                        info="Click a row, or a video on the Generate tab, to choose it.")
            self.job_load = gr.Button("Re-run: load settings", scale=2, elem_id="vg-job-load")
            self.job_run = gr.Button("Run again now", variant="primary", scale=2, elem_id="vg-job-rerun")
            self.job_delete = gr.Button("Delete", variant="stop", scale=1, elem_id="vg-job-delete")
            self.refresh_button = gr.Button("Refresh", scale=1, elem_id="vg-history-refresh")
        self.job_message = gr.Markdown(elem_id="vg-job-message")
        self.seen = gr.State(None)  # the history's signature that the table and the gallery show

    def wire(self, demo: gr.Blocks, tabs: gr.Tabs, generate_event, timer=None) -> None:
        generate = self.web.generate_tab
        drawn = [self.seen, self.table, generate.gallery]
        # After a job ends (Generate's, the several-pictures box's), and after a Cancel (whose job's handler Gradio
        # closes, so nothing runs after it)
        for ended in (generate_event, generate.batch.event):
            ended.then(self.redraw, None, drawn, **PRIVATE)
        for cancelled in self.web.cancel_events():
            cancelled.then(self.redraw, None, drawn, **PRIVATE)
        if timer is not None:
            timer.tick(self.follow, [self.seen], drawn, **PRIVATE)
        self.table.select(self.select_job, None, [self.job_box], **PRIVATE)
        generate.gallery.select(self.select_output_job, None, [self.job_box], **PRIVATE)
        generate.gallery.select(self.show_output, None, [generate.video, generate.info, generate.seed_used,
                                                          generate.download, generate.gallery], **NOTICE)
        self.refresh_button.click(self.redraw, None, drawn, **PRIVATE)
        loaded = generate.settings.stored_outputs(self.job_message, pictures=True)
        self.job_load.click(self.rerun_settings, [self.job_box], loaded, api_name="rerun_settings",
                            show_progress="hidden").success(
            lambda: gr.Tabs(selected="generate-tab"), None, [tabs], **PRIVATE)
        self.job_run.click(self.rerun, [self.job_box], [self.job_message, self.table], api_name="rerun", queue=False,
                           show_progress="hidden")
        self.job_delete.click(self.delete_job, [self.job_box], [self.job_message, self.table, generate.gallery],
                              api_name="delete_job", queue=False, show_progress="hidden")
        gr.api(self.history_list, api_name="history")
        demo.load(self.redraw, None, drawn, **PRIVATE)


__all__ = ["HistoryTab", "GALLERY_SIZE", "HISTORY_ROWS"]

"""One result panel for every tab that runs something (A1111's `create_output_panel`): its run and Cancel buttons,
the reason the run button is disabled, the status line (progress while it runs), the player, the download button
and the info. Generate, Continue, Sweep, Smooth and the several-pictures box each build one (`ResultPanel`) and
get the Generate tab's rules everywhere (issue 29):

- the run button is disabled, with the reason under it, until the tab has what it needs (`wire_ready`);
- Cancel is enabled only while this tab's own job runs, and says what it did (`cancel`);
- a new job clears the old result first (player, info, download, status), so nothing stale stays under it;
- a failure is said once, in the status line (no toast, no "Error" badge on the player: `CSS`);
- what the page tells the user beside a job (no seed yet, no video yet) is shown on the page: those handlers go
  through Gradio's queue (`notice_options`), since a warning from a `queue=False` handler reaches only the
  server's terminal.
"""

from __future__ import annotations

from typing import Any, Callable

import gradio as gr

from .components import session_of
from .progress import status_box, status_cancelled, status_idle

# A failed job is said once, in the status line: not again as Gradio's "Error" badge on a panel's player.
CSS = """
.vg-panel-player [data-testid="status-tracker"] .error { display: none; }
.vg-run, .vg-cancel { min-height: 3em; }
"""
PRIVATE = dict(queue=False, api_visibility="private", show_progress="hidden")
# Handlers that may say something with gr.Warning: queued (a queue=False handler's warning never reaches the
# page), in a concurrency group of their own with no limit, so that they never wait behind a job's handler.
NOTICE = dict(queue=True, api_visibility="private", show_progress="hidden", concurrency_limit=None,
              concurrency_id="notices")
IDLE = "No job yet: the result shows here."
SETTLE_S = 10.0  # how long Cancel waits for the stopped jobs to end before saying so again (one step, normally)


def on_latest(triggers: list, fn: Callable, inputs, outputs, **options: Any):
    """One private handler for several triggers, whose shown result is always the latest inputs': a trigger that
    comes while a call is pending waits for it, then runs with the values as they are then (Gradio's
    `always_last`). As separate listeners, a slow call with old values (the dropped video still being read when
    the length changed) could land after the newer one and stay on the page."""
    return gr.on(triggers, fn, inputs, outputs, **{**PRIVATE, **options}, trigger_mode="always_last")


def wire_ready(triggers: list, inputs, reason: Callable[..., str], buttons: list, reason_box, **options: Any):
    """`buttons` follow `reason(*inputs)` (one `on_latest` handler): enabled when it is "", else disabled with it
    shown in `reason_box`."""

    def state(*values):
        text = reason(*values)
        return (*[gr.update(interactive=not text)] * len(buttons), text)

    return on_latest(triggers, state, inputs, [*buttons, reason_box], **options)


def notice_options() -> dict[str, Any]:
    return dict(NOTICE)


class ResultPanel:
    """A tab's run / cancel / status / player / download / info (see the module). `key` names its elements
    (`vg-<key>-run`, …) unless `ids` gives older names that tests and users rely on."""

    def __init__(self, web, key: str, *, verb: str, idle: str = IDLE, ids: dict[str, str] | None = None):
        self.web = web
        self.board = web.board
        self.key = key
        self.verb = verb  # "Could not <verb>: …"
        self.idle = idle
        names = ("run", "cancel", "reason", "status", "player", "download", "info")
        self.ids = {name: f"vg-{key}-{name}" for name in names} | dict(ids or {})
        self.run_button = self.cancel_button = self.reason = self.status = None
        self.more_buttons: list = []
        self.cancel_event = None
        self.player = self.download = self.info = None
        self.clears: dict[Any, Any] = {}  # extra components a new job empties (component -> its empty value)

    # ---- layout -------------------------------------------------------------------------------------
    def build_buttons(self, run_label: str, *, scale: int = 3, more: dict[str, str] | None = None) -> None:
        """The run button, `more` run buttons before it ({label: elem_id}: the Smooth tab's Preview), Cancel and the
        reason line."""
        with gr.Row():
            self.more_buttons = [gr.Button(label, scale=scale, elem_id=elem, interactive=False,
                                           elem_classes=["vg-run"]) for label, elem in (more or {}).items()]
            self.run_button = gr.Button(run_label, variant="primary", scale=scale, elem_id=self.ids["run"],
                                        interactive=False, elem_classes=["vg-run"])
            self.cancel_button = gr.Button("Cancel", variant="stop", scale=1, elem_id=self.ids["cancel"],
                                           interactive=False, elem_classes=["vg-cancel"])
        self.reason = gr.Markdown("", elem_id=self.ids["reason"])

    def build_status(self) -> None:
        self.status = gr.HTML(status_idle(self.idle), label="Status", elem_id=self.ids["status"])

    def build_player(self, label: str, *, kind: str = "video") -> None:
        if kind == "video":
            self.player = gr.Video(label=label, interactive=False, autoplay=True, loop=True, elem_id=self.ids["player"],
                                   buttons=["download"], elem_classes=["vg-panel-player"])
        else:
            self.player = gr.Image(label=label, interactive=False, type="filepath", elem_id=self.ids["player"],
                                   elem_classes=["vg-panel-player"])

    def build_download(self, **layout) -> None:
        self.download = gr.DownloadButton("Download", variant="primary", size="md", elem_id=self.ids["download"],
                                          interactive=False, **layout)

    def build_info(self, label: str = "Info", *, open: bool = False) -> None:
        self.info = gr.JSON(label=label, elem_id=self.ids["info"], open=open)

    # ---- the rules ----------------------------------------------------------------------------------
    def wire_ready(self, triggers, inputs, reason: Callable[..., str], *, preprocess: bool = True) -> None:
        """The run button follows `reason(*inputs)`: enabled when it is "", else disabled with it shown."""
        wire_ready(triggers, inputs, reason, [self.run_button, *self.more_buttons], self.reason, preprocess=preprocess)

    def started(self) -> tuple:
        """A new job: Cancel on; the old result, its download and info gone, the status says it is starting."""
        cleared = [gr.update(interactive=True), status_box("<b class='vg-stage'>Starting…</b>", "busy"), None, None]
        if self.download is not None:
            cleared.append(gr.update(value=None, interactive=False))
        return (*cleared, *self.clears.values())

    def started_outputs(self) -> list:
        outputs = [self.cancel_button, self.status, self.player, self.info]
        if self.download is not None:
            outputs.append(self.download)
        return outputs + list(self.clears)

    def wire_run(self, button, handler, inputs=None, outputs=None, *, api_name: str | None, **options):
        """`button` starts a job: first (on the page only) Cancel on and the old result cleared, then `handler`
        (the API endpoint `api_name`), then Cancel off again however it ended. Returns the handler's event."""
        start = button.click(self.started, None, self.started_outputs(), **PRIVATE, trigger_mode="once")
        event = start.then(handler, inputs, outputs, api_name=api_name, trigger_mode="once", **options)
        self.after(event)
        return event

    def after(self, event) -> None:
        """Cancel off when `event` ends, however it ended (`.then` does not run after an error)."""
        off = lambda: gr.update(interactive=False)  # noqa: E731
        event.then(off, None, [self.cancel_button], **PRIVATE)
        event.failure(off, None, [self.cancel_button], **PRIVATE)

    def cancel(self, http: gr.Request) -> str:
        """Stop this tab's (this browser session's) job within one step and drop its waiting ones; says so only
        when there was one."""
        session = session_of(http)
        if self.board.cancel(session) or self.board.recently_cancelled(session):
            return status_cancelled("Cancelled: the job stops within one step and saves nothing.")
        return status_idle("Nothing to cancel.")

    def wire_cancel(self, events, *, api_name: str | None, handler: Callable | None = None):
        """The Cancel button: stops the job (`handler`, default `cancel`) and closes `events`' handlers; Cancel off,
        and the player, info and download emptied. Returns the click's event."""
        clicked = self.cancel_button.click(handler or self.cancel, None, [self.status], api_name=api_name,
                                           queue=False, cancels=list(events), show_progress="hidden")
        emptied = [gr.update(interactive=False), None, None]
        outputs = [self.cancel_button, self.player, self.info]
        if self.download is not None:
            emptied.append(gr.update(value=None, interactive=False))
            outputs.append(self.download)
        emptied += list(self.clears.values())
        outputs += list(self.clears)

        def settled(http: gr.Request = None):
            # Once the stopped jobs have ended, say so again: a progress update that the closed handler had sent
            # just before the Cancel may reach the page after the Cancel's own answer and cover it
            session = session_of(http)
            if self.board.wait_for_session(session, timeout_s=SETTLE_S) and self.board.recently_cancelled(session):
                return (status_cancelled("Cancelled: the job stopped and saved nothing."), *emptied)
            return (gr.skip(), *emptied)

        clicked.then(settled, None, [self.status, *outputs], **PRIVATE)
        self.cancel_event = clicked
        return clicked


__all__ = ["ResultPanel", "CSS", "PRIVATE", "NOTICE", "IDLE", "notice_options", "on_latest", "wire_ready"]

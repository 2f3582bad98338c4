"""Load settings (a video made here, or its .json, fills the Generate form: `/load_settings`) and the form filling
that Re-run shares (the History tab's `/rerun_settings`, which sets the pictures too): a stored request's values
fitted to the page, its frames note, and a message saying what was loaded and what had to change."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidRequest
from ..smoothing import stored_request
from .components import user_error
from .fields import stored_values


class StoredSettings:
    """The form filling of the Generate tab `tab` from stored requests."""

    def __init__(self, tab):
        self.tab = tab

    def load_settings(self, file):
        """Fill the Generate form from a video made by this app (or its .json file).

        Parameters:
            file: a video made by this app, or the .json written beside it
        Returns:
            model, duration, fps, resolution, motion_bucket_id, num_inference_steps, seed, noise_aug_strength,
            min_guidance_scale, max_guidance_scale, decode_chunk_size, output_format, crf, resize_mode, loop,
            interpolation: the stored values (fitted to the page's ranges)
            note: the frames note for them
            message: what was loaded, and what had to change to fit the page
            prompt, negative_prompt, image_strength, memory_plan, loras: the stored values
        """
        try:
            request = stored_request(file)
        except InvalidRequest as error:
            raise user_error(str(error)) from None
        return self.stored_form(request, Path(file).name, self.tab.settings_message, pictures=False)

    def load_picture(self, file, message=None):
        """After Load settings: the picture the video was made from, when the app still has it (issue 29): the
        request's own file, else the copy the history keeps in `outputs/.inputs/` (named by its content, which the
        video's metadata holds as `image_sha256`). Returns (picture, message), each left as it is when there is
        none."""
        import gradio as gr

        found = kept_picture(file, Path(self.tab.generator.outputs_dir))
        if found is None:
            return gr.skip(), gr.skip()
        text = str(message or "").replace("Drop the same picture to make the same video.", "").strip()
        return str(found), f"{text} The picture it was made from is in the form.".strip()

    def stored_form(self, request, source: str, message_box, *, pictures: bool) -> dict:
        """The form's values for a stored request, its frames note and a message saying what was loaded and
        what had to change (Load settings, and Re-run with `pictures`)."""
        installed = request.model in [info.name for info in self.tab.picker.models()]
        values, notes = stored_values(request, self.tab.form.fields, self.tab.picker.spec(request.model), pictures=pictures)
        if not installed:
            notes.append(f"model {request.model!r} is not installed here")
        note = self.tab.note(request.model if installed else None, values["duration"], values["fps"],
                         values.get("loop"), values.get("interpolation"))
        message = f"Loaded the settings of {source} (seed {request.seed}). "
        message += ("Its pictures are in the form." if pictures and values.get("image")
                    else "Drop the same picture to make the same video.")
        if notes:
            message += " Changed to fit the page: " + "; ".join(notes) + "."
        return {**self.tab.form.updates(values), self.tab.note_box: note, message_box: message}

    def stored_outputs(self, message_box, *, pictures: bool) -> list:
        """The outputs of Load settings and Re-run, in their API's order."""
        early, late = self.tab.form.stored_outputs(pictures=pictures)
        return [*early, self.tab.note_box, message_box, *late]


def kept_picture(file, outputs_dir: Path) -> Path | None:
    """The picture a stored video (or its .json) was made from, if it is still on this machine."""
    from .. import video_io
    from ..history import INPUTS_DIRNAME

    try:
        metadata = video_io.read_metadata(file) or {}
    except (OSError, ValueError, InvalidRequest):
        return None
    stored = (metadata.get("request") or {}).get("image") if isinstance(metadata.get("request"), dict) else None
    if isinstance(stored, str) and stored and Path(stored).is_file():
        return Path(stored)
    digest = metadata.get("image_sha256")
    if not isinstance(digest, str) or len(digest) < 24:
        return None
    folder = Path(outputs_dir) / INPUTS_DIRNAME
    return next((path for path in sorted(folder.glob(f"{digest[:24]}.*")) if path.is_file()), None) \
        if folder.is_dir() else None

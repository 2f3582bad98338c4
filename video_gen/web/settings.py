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

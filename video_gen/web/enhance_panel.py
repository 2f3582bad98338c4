"""The Generate tab's Enhance button: the prompt rewritten from the picture by an installed prompt enhancer
(`finishing.enhance_prompt`, in the chosen model's family's style) and written into the prompt box, where it
can be edited before Generate. Shown for families that take a prompt. `/enhance_prompt` (image, prompt, model,
enhancer → prompt). The enhancer runs in the engine's turn and is unloaded when it has written the prompt.
"""

from __future__ import annotations

import gradio as gr

from ..checkpoints import ENHANCER
from ..errors import VideoGenError
from .components import file_path, user_error
from .panel import PRIVATE

NONE_INSTALLED = ("No prompt enhancer installed: `video-gen models download qwen3-vl-4b` puts one in "
                  "models/enhancers.")


class EnhancePanel:
    def __init__(self, tab):
        self.tab = tab
        self.generator = tab.generator

    def choices(self) -> list[str]:
        return [info.name for info in self.generator.catalog.of_role(ENHANCER)]

    def enhance(self, image, prompt, model, enhancer, progress=gr.Progress()):
        """Rewrite the prompt from the picture with a local prompt enhancer, in the model's family's style.

        Parameters:
            image: the picture (handle_file(path))
            prompt: your prompt (empty: the enhancer writes one for the picture)
            model: the installed video model it is for (its family's style); empty: the only one
            enhancer: an installed enhancer's name; empty: the only one
        Returns:
            prompt: the enhanced prompt (the same text `video-gen prompt` prints for these inputs)
        """
        from ..finishing import enhance_prompt

        image = file_path(image)  # a gradio_client FileData
        if self.generator.busy or self.generator.waiting:
            progress(0.0, desc="waiting for the video being made")
        try:
            if not image:
                raise VideoGenError("image: missing: drop the picture first; the enhancer describes what it shows")
            model = model or self.tab.picker.installed_model(None).name
            result = enhance_prompt(self.generator, image, prompt or "", enhancer=enhancer or None, model=model,
                                    on_event=lambda event: progress(0.5, desc=getattr(event, "message", "")))
        except VideoGenError as error:
            raise user_error(str(error)) from None
        return result.text

    def shown(self, model):
        spec = self.tab.picker.spec(model)
        return gr.update(visible=bool(spec and spec.prompt))

    def refresh(self):
        choices = self.choices()
        return gr.update(choices=choices, value=choices[0] if choices else None,
                         info=None if choices else NONE_INSTALLED)

    # ---- layout ----------------------------------------------------------------------------------
    def build(self, spec) -> None:
        choices = self.choices()
        with gr.Row(equal_height=True, visible=bool(spec and spec.prompt), elem_id="vg-enhance-row") as self.row:
            self.enhancer = gr.Dropdown(choices, value=choices[0] if choices else None, label="Prompt enhancer",
                                        info=None if choices else NONE_INSTALLED, elem_id="vg-enhancer", scale=5)
            self.button = gr.Button("Enhance", scale=1, min_width=90, elem_id="vg-enhance")

    def wire(self, demo: gr.Blocks) -> None:
        form = self.tab.form
        self.button.click(self.enhance, [form["image"], form["prompt"], form["model"], self.enhancer],
                          [form["prompt"]], api_name="enhance_prompt", concurrency_limit=1,
                          concurrency_id="enhance", trigger_mode="once", show_progress="full",
                          show_progress_on=[form["prompt"]])
        form["model"].change(self.shown, [form["model"]], [self.row], **PRIVATE)
        self.tab.load_event.then(self.refresh, None, [self.enhancer], **PRIVATE)  # after the page's scan


__all__ = ["EnhancePanel"]

"""The Generate tab's model list: which models are installed (the engine's catalog), their labels, each one's
family spec as the page shows it and its own defaults, and the model a page or API value names. Imports no
torch."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..checkpoints import HOW_TO_GET
from ..console import command
from ..demo import is_demo
from ..errors import InvalidRequest, VideoGenError
from ..families import load_family, spec_for, specs
from ..families.spec import FamilySpec
from .fields import NEUTRAL_CLIP, NEUTRAL_RESOLUTION

# A model's own defaults are what its clip length and size come from; until one is installed, neutral ones.
NEUTRAL_MODEL = {**NEUTRAL_CLIP, "width": int(NEUTRAL_RESOLUTION.split("x")[0]),
                 "height": int(NEUTRAL_RESOLUTION.split("x")[1])}


class ModelPicker:
    """The installed models as the page offers them, for one engine (`generator`)."""

    def __init__(self, generator):
        self.generator = generator

    # ---- models -------------------------------------------------------------------------------
    def models(self, refresh: bool = False):
        """The installed models, from the engine's catalog (scanned once; `refresh` scans the folders again)."""
        return self.generator.list_models(refresh=refresh)

    def model_choices(self, models=None) -> list[tuple[str, str]]:
        """The dropdown's (label, name) pairs: each label names the model's family."""
        return [(f"{info.name} · {spec_for(info.family).label}" + (" · DEMO: makes noise, not video"
                                                                   if is_demo(info) else ""), info.name)
                for info in (self.models() if models is None else models)]

    def spec(self, name: str | None) -> FamilySpec | None:
        info = next((info for info in self.models() if info.name == name), None) if name else None
        return model_spec(info) if info else None

    def model_defaults(self, name: str | None) -> dict[str, Any]:
        """An installed model's request defaults, read from its configs (no weights load); neutral values for
        a name that is not installed (it is not looked for: that would scan the folders)."""
        if not name or all(info.name != name for info in self.models()):
            return dict(NEUTRAL_MODEL)
        try:
            return self.generator.defaults(name)
        except (VideoGenError, OSError, ValueError, KeyError):  # a broken model says so when it is used
            return dict(NEUTRAL_MODEL)

    def installed_model(self, name: str | None):
        """The installed model `name` means (None: the only one). A name not in the catalog scans the folders
        again, once: it may have been added since."""
        models = self.models()
        if not models or name is not None and all(info.name != name for info in models):
            models = self.models(refresh=True)
        names = [info.name for info in models]
        if not models:
            raise InvalidRequest("model", f"no model installed in {Path(self.generator.models_dir).resolve()}; "
                                          f"{HOW_TO_GET}")
        if name is None:
            if len(models) > 1:
                raise InvalidRequest("model", f"choose one of the installed models: {', '.join(names)}")
            return models[0]
        if name not in names:  # only models in the models folder: a web client names no paths
            raise InvalidRequest("model", f"{name!r} is not installed (installed: {', '.join(names)}); "
                                          f"press Refresh after adding one")
        return models[names.index(name)]

    def empty_state(self) -> str:
        # A few names, not every download (issue 29: 22 names stood before the demo button)
        names = [download.name for spec in specs() for download in spec.downloads]
        shown = ", ".join(name for name in ("svd-xt", "wan2.2-ti2v-5b", "ltx-video") if name in names) or \
            ", ".join(names[:3])
        return (f"**No model installed.** Try every step first with the demo models (the button above: they make "
                f"noise, not video, and need no download), or put a model folder (diffusers layout, with "
                f"`model_index.json`) in `{html.escape(str(Path(self.generator.models_dir).resolve()))}`, for "
                f"example with `{html.escape(command('models download NAME'))}` ({shown}, …; "
                f"`{html.escape(command('models download --help'))}` lists them all), then press Refresh. "
                f"({HOW_TO_GET}.)")


def model_spec(info) -> FamilySpec:
    """The spec the page shows for one model: its family's, narrowed by the family's optional `model_spec(info)`
    where its variants differ (a Wan model that cannot take a last frame hides that input)."""
    spec = spec_for(info.family)
    narrow = getattr(load_family(info.family), "model_spec", None)
    if narrow is None:
        return spec
    try:
        return narrow(info)
    except (VideoGenError, OSError, ValueError, KeyError):  # a broken model says so when it is used
        return spec
